package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/edgetel/edgetel/processors/edgenodeprocessor"
)

// TestEdgenodeProcessorEnrichesFromTheInformer runs the edgenode processor's Node informer with
// the collector's ServiceAccount against edgesim's registered fleet: a resource of a registered
// node gets its NodeGroup, region and Ready state, and Ready follows the node's tunnel.
func TestEdgenodeProcessorEnrichesFromTheInformer(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	sim, reg := startFleet(t, c, 5)
	require.NoError(t, reg.Register(ctx))
	node := sim.Fleet().Nodes[2]

	f := edgenodeprocessor.NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"auth_type":         "kubeConfig",
		"kubeconfig":        kubeconfigFor(t, c, "edgetel-collector"),
		"wait_for_metadata": true,
	}).Unmarshal(cfg))
	require.NoError(t, cfg.(interface{ Validate() error }).Validate())
	sink := new(consumertest.MetricsSink)
	p, err := f.CreateMetrics(ctx, processortest.NewNopSettings(f.Type()), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, p.Start(ctx, nil))
	t.Cleanup(func() { require.NoError(t, p.Shutdown(ctx)) })

	enriched := func(t require.TestingT) map[string]any {
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("k8s.node.name", node.Name)
		rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
		sink.Reset()
		require.NoError(t, p.ConsumeMetrics(ctx, md))
		require.Len(t, sink.AllMetrics(), 1)
		return sink.AllMetrics()[0].ResourceMetrics().At(0).Resource().Attributes().AsRaw()
	}
	attrs := enriched(t)
	assert.Equal(t, node.Labels["apps.kubeedge.io/belonging-to"], attrs["node_group"])
	assert.Equal(t, node.Labels["topology.kubernetes.io/region"], attrs["region"])
	assert.Equal(t, "true", attrs["node_ready"])

	sim.Disconnect(node.Name)
	require.NoError(t, reg.Sync(ctx))
	require.EventuallyWithT(t, func(c *assert.CollectT) { assert.Equal(c, "unknown", enriched(c)["node_ready"]) },
		10*time.Second, 100*time.Millisecond, "node_ready did not follow the Node's Ready=Unknown")
}
