package logs

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

func TestLogsFollowThroughCloudcoreExactlyOnce(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 3, edgesim.LogsConfig{PodsPerNode: 2, Rate: 200, Burst: 3, StderrEvery: 4, PollInterval: 20 * time.Millisecond})
	g := newRig(s, fleetFile)
	g.logs.SplitStreams = true
	g.logs.Storage = &storageID
	host, ext := newStorageHost(t, t.TempDir())
	defer ext.Shutdown(context.Background())
	sink := new(consumertest.LogsSink)
	r := startLogs(t, g, sink, host)

	// 3 nodes × 2 pods × 2 containers × stdout/stderr.
	require.Eventually(t, func() bool { return len(checkExactlyOnce(t, s, records(sink), true)) == 24 }, 20*time.Second, 20*time.Millisecond)
	// A tunnel drop ends the node's streams; they resume where they stopped.
	s.SetTunnelClosed("edge-00002", true)
	time.Sleep(300 * time.Millisecond) // the cut lasts a while: lines are written meanwhile
	s.Disconnect("edge-00002")
	time.Sleep(300 * time.Millisecond)
	s.Reconnect("edge-00002")
	before := len(records(sink))
	require.Eventually(t, func() bool { return len(records(sink)) > before+1000 }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))

	// A restart resumes from the saved positions: nothing twice, nothing missing.
	stopped := len(records(sink))
	time.Sleep(200 * time.Millisecond)
	r = startLogs(t, g, sink, host)
	require.Eventually(t, func() bool { return len(records(sink)) > stopped+1000 }, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	recs := records(sink)
	counts := checkExactlyOnce(t, s, recs, true)
	assert.Len(t, counts, 24)

	// Attributes: pod, container, namespace, node, its region and site, the stream; the kubelet's time.
	n := s.Fleet().Nodes[1]
	var seen bool
	for _, rec := range recs {
		if rec.attrs["k8s.pod.name"] != "edge-00002-app-1" || rec.attrs["k8s.container.name"] != "c0" {
			continue
		}
		seen = true
		assert.Equal(t, "edge-apps", rec.attrs["k8s.namespace.name"])
		assert.Equal(t, n.Name, rec.attrs["k8s.node.name"])
		assert.Equal(t, n.Labels[kube.LabelRegion], rec.attrs["region"])
		assert.Equal(t, n.Labels[kube.LabelSite], rec.attrs["site"])
		wantIO := "stdout"
		if s.IsStderr(rec.seq) {
			wantIO = "stderr"
		}
		assert.Equal(t, wantIO, rec.attrs["log.iostream"])
		assert.True(t, rec.ts.After(time.Now().Add(-time.Hour)), rec.ts)
	}
	assert.True(t, seen)
}

func TestLogsRefusedBatchesAreOfferedAgain(t *testing.T) {
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: 1, Rate: 500})
	g := newRig(s, fleetFile)
	g.logs.MaxPendingLines = 100 // the streams stop reading while refused
	c := &flakyConsumer{refuse: true}
	r := startLogs(t, g, c, componenttest.NewNopHost())
	defer r.Shutdown(context.Background())
	require.Eventually(t, func() bool { return c.refusals() > 5 }, 10*time.Second, 10*time.Millisecond)
	r.mu.Lock()
	for _, f := range r.followers {
		assert.LessOrEqual(t, f.pendingLen(), 100+1, "pending is bounded")
	}
	r.mu.Unlock()
	c.set(false)
	require.Eventually(t, func() bool { return len(records(&c.LogsSink)) > 2000 }, 20*time.Second, 20*time.Millisecond)
	counts := checkExactlyOnce(t, s, records(&c.LogsSink), false)
	assert.Len(t, counts, 2)
}

func TestLogsPermanentRefusalDropsAndMovesOn(t *testing.T) {
	s, fleetFile := startLogSim(t, 1, edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: 1, Rate: 100})
	g := newRig(s, fleetFile)
	var calls sync.WaitGroup
	calls.Add(1)
	var once sync.Once
	next, err := consumer.NewLogs(func(context.Context, plog.Logs) error {
		once.Do(calls.Done)
		return consumererror.NewPermanent(errors.New("bad data"))
	})
	require.NoError(t, err)
	r := startLogs(t, g, next, componenttest.NewNopHost())
	calls.Wait()
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, f := range r.followers {
			return f.pendingLen() < g.logs.MaxPendingLines && f.read.N > 0
		}
		return false
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestLogsPodsGoneStopTheirStreams(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 1, Rate: 50})
	g := newRig(s, fleetFile)
	g.refresh = 20 * time.Millisecond
	sink := new(consumertest.LogsSink)
	r := startLogs(t, g, sink, componenttest.NewNopHost())
	followed := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.followers)
	}
	require.Eventually(t, func() bool { return followed() == 4 }, 10*time.Second, 10*time.Millisecond)

	// One pod goes away: its stream stops and is forgotten; a node going away takes its pods.
	f := s.Fleet()
	f.Nodes[0].Pods = f.Nodes[0].Pods[:1]
	require.NoError(t, fleet.Save(fleetFile, f))
	require.Eventually(t, func() bool { return followed() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.draining) == 0
	}, 10*time.Second, 10*time.Millisecond)
	f.Nodes = f.Nodes[:1]
	require.NoError(t, fleet.Save(fleetFile, f))
	require.Eventually(t, func() bool { return followed() == 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestLogsSelection(t *testing.T) {
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 1, Rate: 50})
	for name, tc := range map[string]struct {
		ns       []string
		selector string
		want     int
	}{
		"other namespace":    {ns: []string{"kube-system"}, want: 0},
		"namespace":          {ns: []string{"edge-apps"}, want: 4},
		"all namespaces":     {ns: []string{"*"}, want: 4},
		"selector matches":   {ns: []string{"edge-apps"}, selector: edgesim.PodLabel + "=edgesim", want: 4},
		"selector excludes":  {ns: []string{"edge-apps"}, selector: edgesim.PodLabel + "!=edgesim", want: 0},
		"label set required": {ns: []string{"edge-apps"}, selector: "tier", want: 0},
	} {
		t.Run(name, func(t *testing.T) {
			g := newRig(s, fleetFile)
			g.logs.Namespaces, g.logs.LabelSelector = tc.ns, tc.selector
			r, err := g.newReceiver(new(consumertest.LogsSink))
			require.NoError(t, err)
			r.sync(context.Background(), nil) // nothing discovered: nothing followed
			assert.Empty(t, r.followers)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			targets := fileTargets(t, fleetFile)
			r.slots = make(chan struct{}) // no stream may open: this checks the selection only
			r.sync(ctx, targets)
			assert.Len(t, r.followers, tc.want)
			cancel()
			r.wg.Wait()
		})
	}
}

func TestLogsDeniedByDefault(t *testing.T) {
	g := &rig{logs: DefaultConfig(), set: receivertest.NewNopSettings(metadata.Type),
		fleetFile: filepath.Join(t.TempDir(), "none.json"), refresh: time.Hour}
	_, err := g.newReceiver(new(consumertest.LogsSink))
	assert.ErrorContains(t, err, "logs.namespaces must list")

	// A storage that is not there, or not a storage, fails Start with its name.
	g.logs.Namespaces = []string{"apps"}
	g.logs.Storage = &storageID
	r, err := g.newReceiver(new(consumertest.LogsSink))
	require.NoError(t, err)
	assert.ErrorContains(t, r.Start(context.Background(), componenttest.NewNopHost()), "file_storage/logs is not configured")
	nf := extensiontest.NewNopFactory()
	nop, err := nf.Create(context.Background(), extensiontest.NewNopSettings(nf.Type()), nf.CreateDefaultConfig())
	require.NoError(t, err)
	host := storageHost{componenttest.NewNopHost(), map[component.ID]component.Component{storageID: nop}}
	assert.ErrorContains(t, r.Start(context.Background(), host), "file_storage/logs is not a storage extension")
}

func TestLogsLongAndMalformedLines(t *testing.T) {
	long := strings.Repeat("x", 300)
	body := "2026-01-02T03:04:05.000000001Z short\n" +
		"not a timestamp line\n" +
		"2026-01-02T03:04:05.000000002Z " + long + "\n" +
		"2026-01-02T03:04:06Z after\n" +
		"2026-01-02T03:04:07Z cut in transit" // no newline: read again on resume, never half-delivered
	g := &rig{logs: DefaultConfig(), set: receivertest.NewNopSettings(metadata.Type), fleetFile: lineServer(t, body), refresh: time.Hour}
	g.logs.Namespaces = []string{"apps"}
	g.logs.MaxLineSize = 100
	g.logs.FlushInterval = 20 * time.Millisecond
	sink := new(consumertest.LogsSink)
	r := startLogs(t, g, sink, componenttest.NewNopHost())
	require.Eventually(t, func() bool { return sink.LogRecordCount() == 3 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	var bodies []string
	var truncated []bool
	for _, ld := range sink.AllLogs() {
		recs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
		for i := range recs.Len() {
			bodies = append(bodies, recs.At(i).Body().Str())
			_, cut := recs.At(i).Attributes().Get("log.record.truncated")
			truncated = append(truncated, cut)
		}
	}
	require.Len(t, bodies, 3)
	assert.Equal(t, "short", bodies[0])
	assert.Less(t, len(bodies[1]), 300)
	assert.GreaterOrEqual(t, len(bodies[1]), 100)
	assert.Equal(t, []bool{false, true, false}, truncated)
	assert.Equal(t, "after", bodies[2])
}

func TestPositionRoundTripAndRejects(t *testing.T) {
	p := position{TS: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), N: 3}
	got, err := decodePosition(p.encode())
	require.NoError(t, err)
	assert.True(t, p.TS.Equal(got.TS))
	assert.Equal(t, 3, got.N)
	for _, bad := range []string{"{", `{"ts":"x","n":1}`, `{"ts":"2026-01-02T03:04:05Z","n":-1}`, `{"n":2}`, `{"ts":"2026-01-02T03:04:05Z","n":1,"x":1}`} {
		_, err := decodePosition([]byte(bad))
		assert.Error(t, err, bad)
	}
	k := streamKey{ns: "a", pod: "p", container: "c", stream: streamStderr}
	assert.Equal(t, "containerlog/a/p/c/Stderr", k.storageKey())
	assert.Equal(t, "/containerLogs/a/p/c?follow=true&sinceTime=2026-01-02T03%3A04%3A05Z&stream=Stderr&timestamps=true", k.path(p.TS))
}

// Pending lines are bounded by bytes, per stream and for the receiver, not only by count (4,096
// lines of 64 KiB would be 256 MiB per stream): while the pipeline refuses, the streams stop
// reading at the byte bounds, and once it accepts, every line arrives exactly once.
func TestLogsPendingBoundedByBytes(t *testing.T) {
	s, fleetFile := startLogSim(t, 3, edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: 1, Rate: 500})
	g := newRig(s, fleetFile)
	g.logs.MaxPendingLines = 1 << 20
	g.logs.MaxLineSize = 256
	g.logs.MaxPendingBytes = 4096
	g.logs.MaxPendingBytesTotal = 6144
	require.NoError(t, g.logs.Validate())
	c := &flakyConsumer{refuse: true}
	r := startLogs(t, g, c, componenttest.NewNopHost())
	defer r.Shutdown(context.Background())
	require.Eventually(t, func() bool {
		return c.refusals() > 5 && r.pendingBytes.Load() >= g.logs.MaxPendingBytesTotal
	}, 10*time.Second, 10*time.Millisecond, "the streams fill the receiver-wide bound")
	time.Sleep(300 * time.Millisecond) // streams held back stay so
	line := int64(g.logs.MaxLineSize)
	r.mu.Lock()
	var sum int64
	for _, f := range r.followers {
		f.mu.Lock()
		assert.LessOrEqual(t, f.bytes, g.logs.MaxPendingBytes+line, "one stream's pending bytes")
		sum += f.bytes
		f.mu.Unlock()
	}
	r.mu.Unlock()
	assert.Equal(t, sum, r.pendingBytes.Load(), "the receiver-wide count is the streams' sum")
	assert.LessOrEqual(t, sum, g.logs.MaxPendingBytesTotal+3*line, "all streams' pending bytes")
	c.set(false)
	require.Eventually(t, func() bool { return len(records(&c.LogsSink)) > 3000 }, 20*time.Second, 20*time.Millisecond)
	counts := checkExactlyOnce(t, s, records(&c.LogsSink), false)
	assert.Len(t, counts, 3)
}

// With discovery.mode kubernetes the pods come from a shared Pod informer: bound pods of the
// followed namespace are followed, a deleted pod's streams stop, other namespaces are not read.
func TestLogsPodsFromKubernetes(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 1, Rate: 50})
	f := s.Fleet()
	client := fake.NewClientset(f.Nodes[0].KubeNode(corev1.ConditionTrue), f.Nodes[1].KubeNode(corev1.ConditionTrue),
		kubePod("edge-apps", "edge-00001-app-0", "edge-00001", "c0"),
		kubePod("edge-apps", "edge-00002-app-1", "edge-00002", "c0"),
		kubePod("edge-apps", "unbound", "", "c0"),
		kubePod("other", "edge-00001-app-1", "edge-00001", "c0"))
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	g := newRig(s, fleetFile)
	g.registry = reg
	sink := new(consumertest.LogsSink)
	r, err := g.newReceiver(sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	streams := func() map[string]bool {
		out := map[string]bool{}
		for _, rec := range records(sink) {
			out[rec.stream] = true
		}
		return out
	}
	require.Eventually(t, func() bool { return len(streams()) == 2 }, 20*time.Second, 10*time.Millisecond)
	assert.True(t, streams()["edge-apps/edge-00001-app-0/c0"])
	assert.True(t, streams()["edge-apps/edge-00002-app-1/c0"])

	require.NoError(t, client.CoreV1().Pods("edge-apps").Delete(context.Background(), "edge-00002-app-1", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.followers) == 1
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	assert.Len(t, checkExactlyOnce(t, s, records(sink), false), 2)
}

// With logs.kubernetes_events, Kubernetes Events about the shard's edge nodes become lifecycle
// records with the node's attributes: a Node's own Event and one its kubelet reported on a pod.
// Events about other nodes, and those already there at the start, do not.
func TestLifecycleKubernetesEvents(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{})
	f := s.Fleet()
	old := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "old"},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "edge-00001"}, Reason: "Rebooted", Type: corev1.EventTypeWarning}
	client := fake.NewClientset(f.Nodes[0].KubeNode(corev1.ConditionTrue), f.Nodes[1].KubeNode(corev1.ConditionTrue), old)
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	g := newRig(s, fleetFile)
	g.registry = reg
	g.logs.Namespaces = nil
	g.logs.LifecycleEvents = true
	g.logs.KubernetesEvents = true
	sink := new(consumertest.LogsSink)
	r, err := g.newReceiver(sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	// The nodes are known (the baseline snapshot) before the Events come.
	require.Eventually(t, func() bool {
		r.life.mu.Lock()
		defer r.life.mu.Unlock()
		return len(r.life.targets) == 2
	}, 20*time.Second, 10*time.Millisecond)

	for _, e := range []*corev1.Event{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pressure"}, InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "edge-00002"},
			Reason: "NodeHasDiskPressure", Message: "disk pressure", Type: corev1.EventTypeNormal, Count: 1},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "edge-apps", Name: "evicted"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "edge-apps", Name: "app-0"},
			Reason: "Evicted", Message: "The node was low on resource: memory.", Type: corev1.EventTypeWarning, Count: 1,
			Source: corev1.EventSource{Component: "kubelet", Host: "edge-00001"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "elsewhere"}, InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "cloud-1"},
			Reason: "Rebooted", Type: corev1.EventTypeWarning},
	} {
		_, err := client.CoreV1().Events(e.Namespace).Create(context.Background(), e, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	got := map[string]map[string]any{}
	require.Eventually(t, func() bool {
		for _, ld := range sink.AllLogs() {
			for i := range ld.ResourceLogs().Len() {
				rl := ld.ResourceLogs().At(i)
				rec := rl.ScopeLogs().At(0).LogRecords().At(0)
				if rec.EventName() != eventKubernetes {
					continue
				}
				attrs := rec.Attributes().AsRaw()
				node, _ := rl.Resource().Attributes().Get("k8s.node.name")
				site, _ := rl.Resource().Attributes().Get("site")
				attrs["node"], attrs["site"], attrs["severity"], attrs["body"] = node.Str(), site.Str(), rec.SeverityText(), rec.Body().Str()
				got[attrs["k8s.event.name"].(string)] = attrs
			}
		}
		return len(got) >= 2
	}, 20*time.Second, 10*time.Millisecond)
	assert.Len(t, got, 2, "only the new Events about the shard's nodes: %v", keys(got))
	assert.Equal(t, "edge-00002", got["pressure"]["node"])
	assert.Equal(t, "INFO", got["pressure"]["severity"])
	assert.Equal(t, map[string]any{"event.name": eventKubernetes, "k8s.event.name": "evicted", "k8s.event.reason": "Evicted",
		"k8s.event.count": int64(1), "k8s.namespace.name": "edge-apps", "k8s.object.kind": "Pod", "k8s.object.name": "app-0",
		"node": "edge-00001", "site": f.Nodes[0].Labels[kube.LabelSite], "severity": "WARN", "body": "The node was low on resource: memory."},
		got["evicted"])
}

func TestLifecycleFromSnapshotsAndHealth(t *testing.T) {
	l := newLifecycle()
	now := time.Now()
	l.snapshot([]discovery.Target{lifeNode("a", kube.ReadyTrue), lifeNode("b", kube.ReadyTrue)}, now)
	l.health(lifeNode("a", kube.ReadyTrue), true)
	ev, _ := l.take()
	assert.Empty(t, ev, "the first snapshot and round are the baseline")

	l.snapshot([]discovery.Target{lifeNode("a", kube.ReadyFalse), lifeNode("b", kube.ReadyTrue), lifeNode("c", kube.ReadyTrue)}, now)
	l.snapshot([]discovery.Target{lifeNode("a", kube.ReadyTrue), lifeNode("c", kube.ReadyTrue)}, now)
	l.health(lifeNode("a", kube.ReadyTrue), false)
	l.health(lifeNode("a", kube.ReadyTrue), false)
	l.health(lifeNode("a", kube.ReadyTrue), true)
	l.health(lifeNode("zz", kube.ReadyTrue), false) // not a node of this shard
	ev, over := l.take()
	assert.Zero(t, over)
	assert.Equal(t, []string{
		eventNodeNotReady + " a", eventNodeJoin + " c",
		eventNodeReady + " a", eventNodeLeave + " b",
		eventTunnelDown + " a", eventTunnelUp + " a",
	}, eventNames(ev))
	assert.Equal(t, plog.SeverityNumberWarn, ev[0].severity)
	assert.Equal(t, plog.SeverityNumberInfo, ev[1].severity)
	l.done(2)
	ev, _ = l.take()
	assert.Len(t, ev, 4)

	// Taints: a NoExecute one coming is a warning, its going information.
	tainted := lifeNode("a", kube.ReadyTrue)
	tainted.Taints = []corev1.Taint{{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute}}
	l.snapshot([]discovery.Target{tainted, lifeNode("c", kube.ReadyTrue)}, now)
	l.snapshot([]discovery.Target{lifeNode("a", kube.ReadyTrue), lifeNode("c", kube.ReadyTrue)}, now)
	ev, _ = l.take()
	require.Len(t, ev, 6)
	assert.Equal(t, eventTaints, ev[4].name)
	assert.Equal(t, plog.SeverityNumberWarn, ev[4].severity)
	assert.Contains(t, ev[4].body, "added [node.kubernetes.io/unreachable:NoExecute], removed []")
	assert.Equal(t, plog.SeverityNumberInfo, ev[5].severity)
	assert.Contains(t, ev[5].body, "removed [node.kubernetes.io/unreachable:NoExecute]")
	l.done(6)

	// Refused for long, the oldest events make room and are counted.
	for i := range maxLifecycleEvents + 5 {
		l.health(lifeNode("a", kube.ReadyTrue), i%2 == 1)
	}
	ev, over = l.take()
	assert.Len(t, ev, maxLifecycleEvents)
	assert.Equal(t, 5, over)
}

// A log stream opened while the edge cannot reach its kubelet gets nothing, not even headers,
// from real cloudcore. logs.idle_timeout closes it, counted idle_timeout, and the stream
// resumes from its position once the kubelet is back: every line once.
func TestLogsDeadKubeletDoesNotHangTheStream(t *testing.T) {
	s, fleetFile := startHASim(t, 1, 2, edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: 1, Rate: 100, PollInterval: 20 * time.Millisecond})
	g := newRig(s, fleetFile)
	g.cloudcores = s.Addrs()
	g.logs.IdleTimeout = 300 * time.Millisecond
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	g.set.TelemetrySettings = tel.NewTelemetrySettings()
	sink := new(consumertest.LogsSink)
	r, err := g.newReceiver(sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	require.Eventually(t, func() bool { return len(records(sink)) > 50 }, 20*time.Second, 10*time.Millisecond)

	name := s.Fleet().Nodes[0].Name
	s.SetKubeletDown(name, true)
	idleEnds := func() int64 {
		m, err := tel.GetMetric("otelcol_receiver_kubeedge_log_stream_ends")
		if err != nil {
			return 0
		}
		n := int64(0)
		for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
			if v, _ := dp.Attributes.Value(attribute.Key("reason")); v.AsString() == "idle_timeout" {
				n += dp.Value
			}
		}
		return n
	}
	// Every reopened stream hangs too, and is closed at its idle deadline each time.
	require.Eventually(t, func() bool { return idleEnds() >= 2 }, 10*time.Second, 10*time.Millisecond)
	assert.Positive(t, s.Stats().Hung)

	s.SetKubeletDown(name, false)
	stopped := len(records(sink))
	require.Eventually(t, func() bool { return len(records(sink)) > stopped+100 }, 10*time.Second, 10*time.Millisecond)
	counts := checkExactlyOnce(t, s, records(sink), false)
	assert.Len(t, counts, 1)
}
