package kubeedgereceiver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	corev1 "k8s.io/api/core/v1"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

func lifeNode(name string, ready kube.Readiness) discovery.Target {
	return discovery.Target{Node: kube.Node{Name: name, Ready: ready, Labels: map[string]string{kube.LabelRegion: "eu"}}}
}

func eventNames(events []lifecycleEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.name + " " + e.node.Name
	}
	return out
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

// The logs signal's tunnel records come from the metrics signal of the same receiver: a node's
// tunnel cut and restored in edgesim arrives as two records with the node's attributes.
func TestLifecycleTunnelFromScrapeHealth(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 3, edgesim.LogsConfig{})
	cfg := logsConfig(s, fleetFile)
	cfg.CollectionInterval, cfg.ScrapeTimeout = 200*time.Millisecond, 200*time.Millisecond
	cfg.Logs.Namespaces = nil
	cfg.Logs.LifecycleEvents = true
	cfg.Discovery.File.RefreshInterval = 20 * time.Millisecond
	f := newFactory(nil)
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.MustNewIDWithName("kubeedge", "life")
	mr, err := f.CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	sink := new(consumertest.LogsSink)
	lr, err := f.CreateLogs(context.Background(), set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, mr.Start(context.Background(), componenttest.NewNopHost()))
	defer func() {
		require.NoError(t, mr.Shutdown(context.Background()))
		require.NoError(t, lr.Shutdown(context.Background()))
	}()
	got := map[string]map[string]any{}
	has := func(want ...string) func() bool {
		return func() bool {
			for _, ld := range sink.AllLogs() {
				for i := range ld.ResourceLogs().Len() {
					rl := ld.ResourceLogs().At(i)
					rec := rl.ScopeLogs().At(0).LogRecords().At(0)
					node, _ := rl.Resource().Attributes().Get("k8s.node.name")
					attrs := rl.Resource().Attributes().AsRaw()
					attrs["severity"] = rec.SeverityText()
					attrs["event.name"] = rec.Attributes().AsRaw()["event.name"]
					got[rec.EventName()+" "+node.Str()] = attrs
				}
			}
			for _, k := range want {
				if got[k] == nil {
					return false
				}
			}
			return true
		}
	}
	// Every node's first rounds are the baseline: wait for some, then cut one node's tunnel.
	require.Eventually(t, func() bool { return s.Stats().Bodies >= 3*3*3 }, 20*time.Second, 10*time.Millisecond)
	s.Disconnect("edge-00002")
	require.Eventually(t, has(eventTunnelDown+" edge-00002"), 20*time.Second, 10*time.Millisecond, "got %v", keys(got))
	s.Reconnect("edge-00002")
	require.Eventually(t, has(eventTunnelUp+" edge-00002"), 20*time.Second, 10*time.Millisecond, "got %v", keys(got))
	// A node joins: the file gains one.
	fl := s.Fleet()
	fl.Nodes = append(fl.Nodes, fleet.Node{Name: "edge-new", IP: "10.9.9.9", Port: 10350, Labels: map[string]string{kube.LabelSite: "s9"}})
	require.NoError(t, fleet.Save(fleetFile, fl))
	require.Eventually(t, has(eventNodeJoin+" edge-new"), 20*time.Second, 10*time.Millisecond, "got %v", keys(got))
	want := map[string]bool{eventTunnelDown + " edge-00002": true, eventTunnelUp + " edge-00002": true, eventNodeJoin + " edge-new": true}
	n := s.Fleet().Nodes[1]
	down := got[eventTunnelDown+" edge-00002"]
	assert.Equal(t, n.Labels[kube.LabelRegion], down["region"])
	assert.Equal(t, n.Labels[kube.LabelSite], down["site"])
	assert.Equal(t, "WARN", down["severity"])
	assert.Equal(t, eventTunnelDown, down["event.name"])
	assert.Equal(t, "INFO", got[eventTunnelUp+" edge-00002"]["severity"])
	assert.Equal(t, "s9", got[eventNodeJoin+" edge-new"]["site"])
	// Other nodes may flap too on a slow machine (a round that times out is a drop): only the
	// joins and leaves are exactly these.
	for k := range got {
		if strings.HasPrefix(k, eventNodeJoin) || strings.HasPrefix(k, eventNodeLeave) {
			assert.True(t, want[k], "unexpected %s", k)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A receiver leaves the factory's links on Shutdown: after a reload that keeps only the logs
// signal of an ID, the new logs receiver does not reach the old, stopped metrics receiver.
func TestShutdownLeavesTheLinks(t *testing.T) {
	s, fleetFile := startLogSim(t, 1, edgesim.LogsConfig{})
	cfg := logsConfig(s, fleetFile)
	cfg.Logs.Namespaces = nil
	cfg.Logs.LifecycleEvents = true
	f := newFactory(nil)
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.MustNewIDWithName("kubeedge", "reload")
	mr, err := f.CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	lr, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	old := mr.(*kubeedgeReceiver)
	require.NotNil(t, old.health.Load(), "the logs signal hears the metrics signal of its ID")
	require.NoError(t, mr.Shutdown(context.Background()))
	require.NoError(t, lr.Shutdown(context.Background()))

	old.health.Store(nil)
	lr2, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.Nil(t, old.health.Load(), "a stopped metrics receiver is not linked to a new logs receiver")
	require.NoError(t, lr2.Shutdown(context.Background()))
}
