package kubeedgereceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// staleBatch reports whether md ends series: every scraped point carries NoRecordedValue.
func staleBatch(md pmetric.Metrics) bool {
	ms, _ := allMetrics(md)
	if len(ms) == 0 {
		return false
	}
	for _, m := range ms {
		var dps pmetric.NumberDataPointSlice
		switch m.Type() {
		case pmetric.MetricTypeGauge:
			dps = m.Gauge().DataPoints()
		case pmetric.MetricTypeSum:
			dps = m.Sum().DataPoints()
		default:
			continue
		}
		for j := 0; j < dps.Len(); j++ {
			if !dps.At(j).Flags().NoRecordedValue() {
				return false
			}
		}
	}
	return true
}

func lastBatch(sink *consumertest.MetricsSink, node string) pmetric.Metrics {
	b := batches(sink, node)
	if len(b) == 0 {
		return pmetric.NewMetrics()
	}
	return b[len(b)-1]
}

// attrOf is the label key of metric's first point: its own attribute, else its resource's
// (the target labels).
func attrOf(md pmetric.Metrics, metric, key string) string {
	ms, res := allMetrics(md)
	for i, m := range ms {
		if m.Name() == metric && m.Type() == pmetric.MetricTypeGauge {
			if v, ok := m.Gauge().DataPoints().At(0).Attributes().Get(key); ok {
				return v.Str()
			}
			v, _ := res[i].Get(key)
			return v.Str()
		}
	}
	return ""
}

func TestKubernetesDiscoveryFollowsNodes(t *testing.T) {
	cc := newFakeCloudcore(t)
	body := []byte("# TYPE edge_temp_celsius gauge\nedge_temp_celsius 40\n")
	edge1 := fleet.Node{Name: "edge-1", IP: "10.0.0.1", Port: 10351, Labels: map[string]string{kube.LabelRegion: "eu"}}
	edge2 := fleet.Node{Name: "edge-2", IP: "10.0.0.2", Port: 10351}
	cloudNode := fleet.Node{Name: "cloud-1", IP: "10.0.9.1", Port: 10351}
	for _, n := range []fleet.Node{edge1, edge2, cloudNode} {
		cc.set(n.Address(), "/metrics", body)
	}
	cloud := cloudNode.KubeNode(corev1.ConditionTrue)
	delete(cloud.Labels, kube.LabelEdgeRole)
	delete(cloud.Labels, kube.LabelAgentRole)
	client := fake.NewClientset(edge1.KubeNode(corev1.ConditionTrue), edge2.KubeNode(corev1.ConditionTrue), cloud)
	nodes := client.CoreV1().Nodes()
	ctx := context.Background()

	cfg := testConfig(t, cc, StaticNode{Name: "unused", IP: "127.0.0.1"})
	cfg.Discovery.Mode = DiscoveryKubernetes
	cfg.Endpoints.Cadvisor.Enabled = false
	cfg.Endpoints.Metrics.Enabled = true
	require.NoError(t, cfg.Validate())
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.MetricsSink), reg)
	require.NoError(t, err)
	sink := new(consumertest.MetricsSink)
	r.next = sink
	require.NoError(t, r.Start(ctx, nil))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(ctx)) })

	// Added edge nodes are scraped and ready; the cloud node never is.
	require.Eventually(t, func() bool {
		return len(batches(sink, "edge-1")) > 0 && len(batches(sink, "edge-2")) > 0
	}, 10*time.Second, 20*time.Millisecond)
	ready, _ := gaugeValue(lastBatch(sink, "edge-2"), "kubeedge_node_ready", nil)
	assert.Equal(t, 1.0, ready)
	assert.Equal(t, "eu", attrOf(lastBatch(sink, "edge-1"), "edge_temp_celsius", "region"))

	// Relabelled: edge-1's series now carry the new region.
	n1, err := nodes.Get(ctx, "edge-1", metav1.GetOptions{})
	require.NoError(t, err)
	n1.Labels[kube.LabelRegion] = "us"
	_, err = nodes.Update(ctx, n1, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return attrOf(lastBatch(sink, "edge-1"), "edge_temp_celsius", "region") == "us"
	}, 10*time.Second, 20*time.Millisecond)

	// Disconnected: Ready goes Unknown and cloudcore loses the session.
	cc.mu.Lock()
	delete(cc.bodies, edge2.Address())
	cc.mu.Unlock()
	n2, err := nodes.Get(ctx, "edge-2", metav1.GetOptions{})
	require.NoError(t, err)
	n2.Status.Conditions[0].Status = corev1.ConditionUnknown
	_, err = nodes.UpdateStatus(ctx, n2, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		md := lastBatch(sink, "edge-2")
		ready, _ := gaugeValue(md, "kubeedge_node_ready", nil)
		connected, _ := gaugeValue(md, "kubeedge_node_connected", nil)
		disconnects, _ := gaugeValue(md, "kubeedge_node_disconnects_total", nil)
		up, _ := gaugeValue(md, "up", map[string]string{"metrics_path": "/metrics"})
		return ready == 0 && connected == 0 && disconnects == 1 && up == 0
	}, 10*time.Second, 20*time.Millisecond)

	// Deleted: edge-1's series end with staleness markers, and its scrapes stop.
	require.NoError(t, nodes.Delete(ctx, "edge-1", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return staleBatch(lastBatch(sink, "edge-1")) }, 10*time.Second, 20*time.Millisecond)
	scrapes := cc.count(edge1.Address())
	time.Sleep(3 * cfg.CollectionInterval)
	assert.Equal(t, scrapes, cc.count(edge1.Address()))

	// The non-edge node was never asked for.
	assert.Zero(t, cc.count(cloudNode.Address()))
	assert.Empty(t, batches(sink, "cloud-1"))

	// Given the edge label, it becomes a target.
	c, err := nodes.Get(ctx, "cloud-1", metav1.GetOptions{})
	require.NoError(t, err)
	c.Labels[kube.LabelEdgeRole] = ""
	_, err = nodes.Update(ctx, c, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(batches(sink, "cloud-1")) > 0 }, 10*time.Second, 20*time.Millisecond)
}

// Shutdown releases what Start acquired: the scrape loops, discovery and the shared Node
// informer (its last holder), so a second Start opens a fresh watch and nothing keeps running.
func TestStartStopStartReleasesTheInformer(t *testing.T) {
	cc := newFakeCloudcore(t)
	// The fake cloudcore's listener is the test's; everything started after it must end.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	edge := fleet.Node{Name: "edge-1", IP: "10.0.0.1", Port: 10351}
	cc.set(edge.Address(), "/metrics/cadvisor", []byte("x 1\n"))
	client := fake.NewClientset(edge.KubeNode(corev1.ConditionTrue))
	watches := func() int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "watch" {
				n++
			}
		}
		return n
	}
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	cfg := testConfig(t, cc, StaticNode{Name: "unused", IP: "127.0.0.1"})
	cfg.Discovery.Mode = DiscoveryKubernetes
	ctx := context.Background()
	for round := 1; round <= 2; round++ {
		sink := new(consumertest.MetricsSink)
		r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, sink, reg)
		require.NoError(t, err)
		require.NoError(t, r.Start(ctx, nil))
		require.Eventually(t, func() bool { return len(batches(sink, "edge-1")) > 0 }, 10*time.Second, 20*time.Millisecond)
		require.NoError(t, r.Shutdown(ctx))
		assert.Equal(t, round, watches())
	}
}
