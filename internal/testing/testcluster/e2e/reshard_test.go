package e2e

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

const (
	reshardNodes    = 100
	reshardInterval = 2 * time.Second
	// reshardDelay is the receiver's default handover delay: two collection intervals.
	reshardDelay = 2 * reshardInterval
	// collectorSet is the chart's collector StatefulSet, which its Role names.
	collectorSet = "edgetel-collector"
)

// scrapeLog records every successful round of every node, by collector.
type scrapeLog struct {
	mu     sync.Mutex
	rounds map[string][]scrape // by node
}

type scrape struct {
	at        time.Time
	collector int
}

func (l *scrapeLog) consumer(t *testing.T, collector int) consumer.Metrics {
	next, err := consumer.NewMetrics(func(_ context.Context, md pmetric.Metrics) error {
		rms := md.ResourceMetrics()
		if rms.Len() == 0 {
			return nil
		}
		name, ok := rms.At(0).Resource().Attributes().Get("k8s.node.name")
		if !ok {
			return nil
		}
		for _, rm := range rms.All() {
			// A round of the node: its /metrics/resource target answered (not the
			// staleness markers a collector sends when it lets a node go).
			if up, stale, _ := summarize(rm); up == 1 && !stale {
				l.mu.Lock()
				l.rounds[name.Str()] = append(l.rounds[name.Str()], scrape{at: time.Now(), collector: collector})
				l.mu.Unlock()
				return nil
			}
		}
		return nil
	})
	require.NoError(t, err)
	return next
}

// byCollector lists, for each node, the collectors that scraped it in [from, to).
func (l *scrapeLog) byCollector(from, to time.Time) map[string][]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]int{}
	for name, ss := range l.rounds {
		seen := map[int]bool{}
		for _, s := range ss {
			if !s.at.Before(from) && s.at.Before(to) && !seen[s.collector] {
				seen[s.collector] = true
				out[name] = append(out[name], s.collector)
			}
		}
		sort.Ints(out[name])
	}
	return out
}

// gaps lists the nodes that went a round unscraped by every collector in [from, to): two
// consecutive scrapes, by any collectors, more than 1.5 intervals apart (a missed round makes
// it 2), or none within 1.5 intervals of the window's ends.
func (l *scrapeLog) gaps(from, to time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := reshardInterval * 3 / 2
	var out []string
	for name, ss := range l.rounds {
		prev := from
		for _, s := range ss {
			if s.at.Before(from) || !s.at.Before(to) {
				continue
			}
			if d := s.at.Sub(prev); d > limit {
				out = append(out, fmt.Sprintf("%s: %v without a scrape before %s", name, d.Round(time.Millisecond), s.at.Format("15:04:05.000")))
			}
			prev = s.at
		}
		if d := to.Sub(prev); d > limit {
			out = append(out, fmt.Sprintf("%s: %v without a scrape at the end", name, d.Round(time.Millisecond)))
		}
	}
	sort.Strings(out)
	return out
}

// statefulSetPlayer plays the StatefulSet controller (podManagementPolicy Parallel) and the
// kubelet: no controller-manager runs here.
type statefulSetPlayer struct {
	t      *testing.T
	client kubernetes.Interface
	labels map[string]string
}

func (p statefulSetPlayer) create(replicas int32) {
	p.t.Helper()
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: collectorSet, Namespace: Namespace},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			ServiceName:         collectorSet + "-headless",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: p.labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: p.labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "collector", Image: "edgetelcol"}}},
			},
		},
	}
	_, err := p.client.AppsV1().StatefulSets(Namespace).Create(context.Background(), set, metav1.CreateOptions{})
	require.NoError(p.t, err)
	p.t.Cleanup(func() {
		_ = p.client.AppsV1().StatefulSets(Namespace).Delete(context.Background(), collectorSet, metav1.DeleteOptions{})
	})
}

// scale sets spec.replicas, as `helm upgrade --set collector.shards=N` does.
func (p statefulSetPlayer) scale(replicas int32) {
	p.t.Helper()
	ctx := context.Background()
	set, err := p.client.AppsV1().StatefulSets(Namespace).Get(ctx, collectorSet, metav1.GetOptions{})
	require.NoError(p.t, err)
	set.Spec.Replicas = &replicas
	_, err = p.client.AppsV1().StatefulSets(Namespace).Update(ctx, set, metav1.UpdateOptions{})
	require.NoError(p.t, err)
}

// createPod is the controller creating ordinal i's pod (not Ready yet).
func (p statefulSetPlayer) createPod(i int) {
	p.t.Helper()
	labels := map[string]string{"apps.kubernetes.io/pod-index": strconv.Itoa(i)}
	for k, v := range p.labels {
		labels[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", collectorSet, i), Namespace: Namespace, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "collector", Image: "edgetelcol"}}},
	}
	_, err := p.client.CoreV1().Pods(Namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	require.NoError(p.t, err)
	p.t.Cleanup(func() {
		_ = p.client.CoreV1().Pods(Namespace).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
	})
}

// ready is the kubelet reporting the readiness probe passed.
func (p statefulSetPlayer) ready(i int) {
	p.t.Helper()
	ctx := context.Background()
	pods := p.client.CoreV1().Pods(Namespace)
	pod, err := pods.Get(ctx, fmt.Sprintf("%s-%d", collectorSet, i), metav1.GetOptions{})
	require.NoError(p.t, err)
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(p.t, err)
}

// deletePod is the controller removing a condemned pod (an unscheduled pod goes at once).
func (p statefulSetPlayer) deletePod(i int) {
	p.t.Helper()
	require.NoError(p.t, p.client.CoreV1().Pods(Namespace).Delete(context.Background(), fmt.Sprintf("%s-%d", collectorSet, i), metav1.DeleteOptions{}))
}

// startShardReceiver runs collector pod ordinal index's kubeedge receiver, configured as the
// chart renders it with collector.followShards, with the collector's ServiceAccount (so the
// chart's Role is what lets it read the StatefulSet and its pods).
func startShardReceiver(t *testing.T, kubeconfig string, index int, next consumer.Metrics) receiver.Metrics {
	t.Helper()
	f := kubeedgereceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	api := map[string]any{"auth_type": "kubeConfig", "kubeconfig": kubeconfig}
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"collection_interval": reshardInterval.String(),
		"scrape_timeout":      (reshardInterval / 2).String(),
		"endpoints": map[string]any{
			"metrics":  map[string]any{"enabled": false},
			"cadvisor": map[string]any{"enabled": false},
			"resource": map[string]any{"enabled": true},
		},
		"shard": map[string]any{"index": index, "replicas_per_shard": 1,
			"statefulset": map[string]any{"name": collectorSet, "namespace": Namespace}},
		"discovery": map[string]any{"mode": "kubernetes", "kubernetes": api},
		"transport": map[string]any{"mode": "apiserver", "apiserver": api},
	}).Unmarshal(cfg))
	require.NoError(t, cfg.(interface{ Validate() error }).Validate())
	set := receivertest.NewNopSettings(f.Type())
	set.ID = component.NewIDWithName(f.Type(), strconv.Itoa(index))
	set.Logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).With(zap.Int("collector", index))
	r, err := f.CreateMetrics(context.Background(), set, cfg, next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), nil))
	return r
}

// TestReshardLeavesNoNodeUnscraped reshards 2 → 3 → 2 collectors following the StatefulSet
// (shard.statefulset) while edgesim's nodes are scraped through the node proxy. The test plays
// the StatefulSet controller with podManagementPolicy Parallel, the chart's: on scale-up it
// creates the new pod at once, not waiting for the others to be Ready (OrderedReady would, one
// ordinal at a time), and the kubelet marks it Ready once the new collector runs; on scale-down
// it deletes the condemned pod at once and the kubelet stops its collector (SIGTERM: Shutdown).
// No node may go a round without a scrape by some collector, and once the handover is done
// each node is scraped by its owner alone.
func TestReshardLeavesNoNodeUnscraped(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)
	sim, reg := startFleet(t, c, reshardNodes)
	require.NoError(t, reg.Register(ctx))
	names := nodeNames(sim)

	sts := statefulSetPlayer{t: t, client: admin, labels: map[string]string{"app.kubernetes.io/component": "collector", "test": t.Name()}}
	sts.create(2)
	for i := range 2 {
		sts.createPod(i)
		sts.ready(i)
	}
	kubeconfig := kubeconfigFor(t, c, "edgetel-collector")
	log := &scrapeLog{rounds: map[string][]scrape{}}
	receivers := map[int]receiver.Metrics{}
	for i := range 2 {
		receivers[i] = startShardReceiver(t, kubeconfig, i, log.consumer(t, i))
	}
	t.Cleanup(func() {
		for _, r := range receivers {
			assert.NoError(t, r.Shutdown(context.Background()))
		}
	})

	// exactly waits until every node has been scraped for a while by its owner under count
	// alone, and returns when that began.
	exactly := func(step string, count int) {
		t.Helper()
		var diff []string
		ok := assert.Eventually(t, func() bool {
			now := time.Now()
			by := log.byCollector(now.Add(-2*reshardInterval), now)
			diff = nil
			for _, n := range names {
				if want := []int{ownerOf(n, count)}; !assert.ObjectsAreEqual(want, by[n]) {
					diff = append(diff, fmt.Sprintf("%s: by %v, owner %v", n, by[n], want))
				}
			}
			return len(diff) == 0
		}, reshardDelay+6*reshardInterval+20*time.Second, reshardInterval/4)
		require.True(t, ok, "%s: nodes not scraped by exactly their owner of %d shards: %d %v", step, count, len(diff), head(diff))
		t.Logf("%s: each of %d nodes scraped by its owner of %d shards alone", step, len(names), count)
	}
	exactly("2 shards", 2)
	begin := time.Now()

	// Scale-up: spec.replicas 3, the controller creates pod 2, its collector starts and, a
	// round later, its readiness probe passes.
	sts.scale(3)
	sts.createPod(2)
	receivers[2] = startShardReceiver(t, kubeconfig, 2, log.consumer(t, 2))
	time.Sleep(reshardInterval)
	sts.ready(2)
	exactly("2 → 3 shards", 3)
	moved := 0
	for _, n := range names {
		if ownerOf(n, 2) != ownerOf(n, 3) {
			moved++
		}
	}
	t.Logf("%d of %d nodes moved to the new shard", moved, len(names))
	require.Positive(t, moved)

	// Scale-down: spec.replicas 2; the controller deletes pod 2 at once, and its collector is
	// told to stop: it scrapes on until the nodes' new owners have taken over.
	sts.scale(2)
	sts.deletePod(2)
	stopping := time.Now()
	require.NoError(t, receivers[2].Shutdown(ctx))
	delete(receivers, 2)
	lingered := time.Since(stopping)
	t.Logf("the removed collector stopped after %v", lingered.Round(time.Millisecond))
	assert.Greater(t, lingered, reshardDelay/2, "the removed collector stopped before handing over")
	exactly("3 → 2 shards", 2)

	end := time.Now()
	gaps := log.gaps(begin, end)
	require.Empty(t, gaps, "nodes that went a round unscraped during the reshards")
	t.Logf("no node went a round unscraped through 2 → 3 → 2 shards (%v)", end.Sub(begin).Round(time.Second))

	// The chart's Role, which all of this ran with, reads the collectors' StatefulSet alone.
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	collector, err := kubernetes.NewForConfig(restCfg)
	require.NoError(t, err)
	other := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: Namespace}}
	other.Spec = (&appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "other"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}}}).Spec
	_, err = admin.AppsV1().StatefulSets(Namespace).Create(ctx, other, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.AppsV1().StatefulSets(Namespace).Delete(ctx, "other", metav1.DeleteOptions{}) })
	_, err = collector.AppsV1().StatefulSets(Namespace).Get(ctx, "other", metav1.GetOptions{})
	assert.True(t, apierrors.IsForbidden(err), "the collector reads another StatefulSet: %v", err)
	_, err = collector.AppsV1().StatefulSets(Namespace).Get(ctx, collectorSet, metav1.GetOptions{})
	assert.NoError(t, err)
}

// ownerOf is the shard that owns a node among count (inShard, the README's rendezvous hashing).
func ownerOf(name string, count int) int {
	for i := range count {
		if inShard(name, i, count) {
			return i
		}
	}
	return -1
}
