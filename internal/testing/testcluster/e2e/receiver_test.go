package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/internal/testing/testcluster"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

// fleetNodes is the simulated fleet registered as Node objects; the receiver scrapes shard 0 of
// 2, about half of them, every collectionInterval through the API server's node proxy.
const (
	fleetNodes         = 1000
	shardCount         = 2
	collectionInterval = 5 * time.Second
)

// nodeView is what the receiver last sent for a node.
type nodeView struct {
	up      float64 // the /metrics/resource target's up
	stale   bool    // the batch ended the node's series
	at      time.Time
	batches int
}

// recorder keeps each node's last batch summary: the sink of a 1,000-node run must not hold every
// batch.
type recorder struct {
	mu    sync.Mutex
	nodes map[string]nodeView
}

func (r *recorder) consume(_ context.Context, md pmetric.Metrics) error {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	// A batch is one node's round: a resource per endpoint and one for the health series.
	rms := md.ResourceMetrics()
	if rms.Len() == 0 {
		return nil
	}
	name, ok := rms.At(0).Resource().Attributes().Get("k8s.node.name")
	if !ok {
		return nil
	}
	v := r.nodes[name.Str()]
	v.at, v.batches = now, v.batches+1
	v.up, v.stale = -1, true
	points := 0
	for _, rm := range rms.All() {
		up, stale, n := summarize(rm)
		if up >= 0 {
			v.up = up
		}
		v.stale = v.stale && (stale || n == 0)
		points += n
	}
	v.stale = v.stale && points > 0
	r.nodes[name.Str()] = v
	return nil
}

// summarize returns a resource's up value (-1: none), whether every point in it is a staleness
// marker, and how many points it has.
func summarize(rm pmetric.ResourceMetrics) (up float64, stale bool, points int) {
	up, stale = -1, true
	sms := rm.ScopeMetrics()
	for i := 0; i < sms.Len(); i++ {
		ms := sms.At(i).Metrics()
		for j := 0; j < ms.Len(); j++ {
			m := ms.At(j)
			var dps pmetric.NumberDataPointSlice
			switch m.Type() {
			case pmetric.MetricTypeGauge:
				dps = m.Gauge().DataPoints()
			case pmetric.MetricTypeSum:
				dps = m.Sum().DataPoints()
			default:
				continue
			}
			for k := 0; k < dps.Len(); k++ {
				points++
				dp := dps.At(k)
				if !dp.Flags().NoRecordedValue() {
					stale = false
				}
				if m.Name() == "up" {
					up = dp.DoubleValue()
				}
			}
		}
	}
	return up, stale, points
}

func (r *recorder) snapshot() map[string]nodeView {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]nodeView, len(r.nodes))
	for k, v := range r.nodes {
		out[k] = v
	}
	return out
}

// TestReceiverScrapesReadyEdgeNodesThroughNodeProxy runs edgesim's fleet as Node objects and the
// kubeedge receiver with the collector's ServiceAccount: kubernetes discovery and the apiserver
// transport, through kube-apiserver's node proxy to edgesim's cloudcore endpoint (which, like
// cloudcore behind KubeEdge's iptables DNAT, picks the node from the proxied path). After every
// change of the fleet (adds, Ready flaps, deletions) the nodes scraped successfully must be
// exactly the Ready edge nodes of the shard, deleted nodes' series must end with staleness
// markers, and no node outside the shard is ever scraped.
func TestReceiverScrapesReadyEdgeNodesThroughNodeProxy(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)

	sim, reg := startFleet(t, c, fleetNodes)
	begin := time.Now()
	require.NoError(t, reg.Register(ctx))
	t.Logf("registered %d Node objects in %v", fleetNodes, time.Since(begin))

	// A non-edge node with the same kubelet endpoint is never a target.
	cloud := fleet.Node{Name: "cloud-1", IP: c.NodeIP, Port: portOf(t, sim.Addr())}.KubeNode(corev1.ConditionTrue)
	delete(cloud.Labels, kube.LabelEdgeRole)
	delete(cloud.Labels, kube.LabelAgentRole)
	_, err = admin.CoreV1().Nodes().Create(ctx, cloud, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.CoreV1().Nodes().Delete(ctx, cloud.Name, metav1.DeleteOptions{}) })

	rec := &recorder{nodes: map[string]nodeView{}}
	kubeconfig := kubeconfigFor(t, c, "edgetel-collector")
	startReceiver(t, kubeconfig, rec)
	check := func(step string) {
		t.Helper()
		since := time.Now()
		want := readyShard(t, admin)
		var diff string
		ok := assert.Eventually(t, func() bool {
			diff = compare(rec.snapshot(), want, since)
			return diff == ""
		}, 4*collectionInterval+30*time.Second, 100*time.Millisecond)
		require.True(t, ok, "%s: the receiver's scraped nodes differ from the API server's Ready edge nodes of shard 0: %s\n%s",
			step, diff, probe(kubeconfig, want))
		t.Logf("%s: %d Ready edge nodes of shard 0 scraped through the node proxy (%v)", step, len(want), time.Since(since))
	}
	check("added")

	names := nodeNames(sim)
	// Flap: 100 nodes lose their tunnel and go Ready=Unknown, then half of them come back.
	flapped := names[100:200]
	sim.Disconnect(flapped...)
	require.NoError(t, reg.Sync(ctx))
	check("100 nodes not Ready")
	sim.Reconnect(flapped[:50]...)
	require.NoError(t, reg.Sync(ctx))
	check("50 nodes Ready again")

	// Delete 60 nodes, Ready and not: their series end with staleness markers.
	deleted := append(append([]string{}, names[0:40]...), flapped[60:80]...)
	require.NoError(t, reg.Delete(ctx, deleted...))
	check("60 nodes deleted")
	var views map[string]nodeView
	var notEnded []string
	ended := assert.Eventually(t, func() bool {
		views, notEnded = rec.snapshot(), nil
		for _, n := range deleted {
			if v, ok := views[n]; ok && !v.stale {
				notEnded = append(notEnded, n)
			}
		}
		return len(notEnded) == 0
	}, 2*collectionInterval, 100*time.Millisecond)
	require.True(t, ended, "deleted nodes whose last batch is not staleness markers: %v", notEnded)
	require.NotContains(t, views, "cloud-1")
	require.Positive(t, sim.Stats().Bodies)
}

// compare returns "" when the nodes whose last batch (after since) is up=1 are exactly want, no
// node outside want was scraped successfully after since, and every node that was scraped but
// is no longer a Node object ended with staleness markers.
func compare(views map[string]nodeView, want map[string]bool, since time.Time) string {
	var missing, extra []string
	for n := range want {
		if v := views[n]; v.up != 1 || !v.at.After(since) {
			missing = append(missing, n)
		}
	}
	for n, v := range views {
		if !want[n] && v.up == 1 && !v.stale {
			extra = append(extra, n)
		}
	}
	if len(missing)+len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return fmt.Sprintf("not scraped (or not up) since the change: %d %v; scraped though not Ready, not in the shard or deleted: %d %v",
		len(missing), head(missing), len(extra), head(extra))
}

// probe explains a failure: what one expected node answers through the node proxy to the
// collector's identity (a 403 names the missing permission).
func probe(kubeconfig string, want map[string]bool) string {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err.Error()
	}
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err.Error()
	}
	for n := range want {
		resp, err := client.Get(cfg.Host + "/api/v1/nodes/" + n + "/proxy/metrics/resource")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Sprintf("GET node %s through the node proxy as the collector: %s: %s", n, resp.Status, body)
	}
	return ""
}

func head(s []string) []string { return s[:min(len(s), 10)] }

// readyShard is the API server's view: edge nodes whose Ready is True and that fall in shard 0.
func readyShard(t *testing.T, admin kubernetes.Interface) map[string]bool {
	t.Helper()
	list, err := admin.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelEdgeRole + "="})
	require.NoError(t, err)
	out := map[string]bool{}
	for _, n := range list.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && inShard(n.Name, 0, shardCount) {
				out[n.Name] = true
			}
		}
	}
	return out
}

// inShard is the receiver's documented sharding, written again from its README: rendezvous
// hashing, the node going to the shard with the highest score, a shard's score the splitmix64
// finalizer of xxhash64(name) + (shard+1)·0x9e3779b97f4a7c15.
func inShard(name string, index, count int) bool {
	h := xxhash.Sum64String(name)
	best, owner := uint64(0), 0
	for i := range count {
		x := h + uint64(i+1)*0x9e3779b97f4a7c15
		x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
		x = (x ^ x>>27) * 0x94d049bb133111eb
		if x ^= x >> 31; i == 0 || x > best {
			best, owner = x, i
		}
	}
	return owner == index
}

// startFleet starts edgesim's cloudcore endpoint on the node address the API server proxies to,
// serving with the kubelet PKI the API server trusts and requiring its client certificate.
// set, when given, adjusts edgesim's configuration.
func startFleet(t *testing.T, c *testcluster.Cluster, nodes int, set ...func(*edgesim.Config)) (*edgesim.Sim, *edgesim.Registrar) {
	t.Helper()
	nodeIP := c.NodeAddress(t)
	cfg := edgesim.Config{
		Nodes: nodes, Seed: 7, Listen: net.JoinHostPort(nodeIP, "0"), TLSDir: filepath.Dir(c.KubeletTLS.CAFile),
		RequireClientCert: true, ManualStep: true,
	}
	for _, f := range set {
		f(&cfg)
	}
	sim, err := edgesim.New(cfg)
	require.NoError(t, err)
	require.NoError(t, sim.Start(context.Background()))
	t.Cleanup(func() { sim.Close() })
	client, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)
	reg, err := sim.Registrar(edgesim.KubeOptions{Client: client, NodeIP: nodeIP, Port: portOf(t, sim.Addr())})
	require.NoError(t, err)
	t.Cleanup(func() {
		var names []string
		for _, n := range sim.Fleet().Nodes {
			names = append(names, n.Name)
		}
		_ = reg.Delete(context.Background(), names...)
	})
	return sim, reg
}

// startReceiver runs the kubeedge receiver, configured through its config keys as the chart's
// collector is, with kubeconfig's identity for discovery and for the apiserver transport.
func startReceiver(t *testing.T, kubeconfig string, rec *recorder) {
	t.Helper()
	f := kubeedgereceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	api := map[string]any{"auth_type": "kubeConfig", "kubeconfig": kubeconfig}
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"collection_interval": collectionInterval.String(),
		"scrape_timeout":      (collectionInterval - time.Second).String(),
		"endpoints": map[string]any{
			"metrics":  map[string]any{"enabled": false},
			"cadvisor": map[string]any{"enabled": false},
			"resource": map[string]any{"enabled": true},
		},
		"shard":     map[string]any{"index": 0, "count": shardCount},
		"discovery": map[string]any{"mode": "kubernetes", "kubernetes": api},
		"transport": map[string]any{"mode": "apiserver", "apiserver": api},
	}).Unmarshal(cfg))
	require.NoError(t, cfg.(interface{ Validate() error }).Validate())
	next, err := consumer.NewMetrics(rec.consume)
	require.NoError(t, err)
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), nil))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
}

func nodeNames(sim *edgesim.Sim) []string {
	var out []string
	for _, n := range sim.Fleet().Nodes {
		out = append(out, n.Name)
	}
	return out
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return port
}
