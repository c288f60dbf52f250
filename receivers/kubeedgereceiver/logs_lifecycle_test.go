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
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// The record names of internal/logs, stable for queries and alerts.
const (
	eventNodeJoin   = "kubeedge.node.join"
	eventNodeLeave  = "kubeedge.node.leave"
	eventTunnelDown = "kubeedge.node.tunnel_disconnected"
	eventTunnelUp   = "kubeedge.node.tunnel_reconnected"
)

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
