package edgenodeprocessor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/metadata"
)

// harness is the processor with a fake cluster behind it, an in-memory MeterProvider and an
// observed logger.
type harness struct {
	client *fake.Clientset
	tel    *componenttest.Telemetry
	logs   *observer.ObservedLogs
	sink   *consumertest.MetricsSink
	proc   processor.Metrics
}

func testConfig() *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.WaitForMetadata = true
	return cfg
}

func settings(t *testing.T) (processor.Settings, *componenttest.Telemetry, *observer.ObservedLogs) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	core, logs := observer.New(zapcore.InfoLevel)
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	set.Logger = zap.New(core)
	return set, tel, logs
}

func fakeRegistry(c kubernetes.Interface) *kube.Registry {
	return kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return c, nil })
}

// kubeNode is n registered as an edge node, with the given Ready condition.
func kubeNode(n kube.Node, ready corev1.ConditionStatus) *corev1.Node {
	kn := n.Object()
	kn.Labels = map[string]string{kube.LabelEdgeRole: ""}
	maps.Copy(kn.Labels, n.Labels)
	kn.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	return kn
}

func newHarness(t *testing.T, cfg *Config, nodes ...kube.Node) *harness {
	t.Helper()
	objs := make([]runtime.Object, 0, len(nodes))
	for _, n := range nodes {
		objs = append(objs, kubeNode(n, corev1.ConditionTrue))
	}
	h := &harness{client: fake.NewClientset(objs...), sink: new(consumertest.MetricsSink)}
	set, tel, logs := settings(t)
	h.tel, h.logs = tel, logs
	proc, err := newFactory(fakeRegistry(h.client)).CreateMetrics(context.Background(), set, cfg, h.sink)
	require.NoError(t, err)
	require.NoError(t, proc.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, proc.Shutdown(context.Background())) })
	h.proc = proc
	return h
}

func edgeFleet(n int) []kube.Node {
	nodes := make([]kube.Node, n)
	for i := range nodes {
		region := []string{"eu", "us", "apac"}[i%3]
		nodes[i] = kube.Node{
			Name: fmt.Sprintf("edge-%04d", i),
			IP:   fmt.Sprintf("10.20.%d.%d", i/250, i%250+1),
			Labels: map[string]string{
				kube.LabelRegion:    region,
				kube.LabelSite:      fmt.Sprintf("%s-site-%d", region, i%7),
				kube.LabelNodeGroup: fmt.Sprintf("group-%d", i%4),
			},
		}
	}
	return nodes
}

// addSeries appends a resource with one gauge per metric name and series data points each,
// told apart by the "series" attribute.
func addSeries(md pmetric.Metrics, resource map[string]any, series int, metrics ...string) {
	rm := md.ResourceMetrics().AppendEmpty()
	if err := rm.Resource().Attributes().FromRaw(resource); err != nil {
		panic(err) // only a test's own literal can get here
	}
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("edge-app")
	for _, name := range metrics {
		m := sm.Metrics().AppendEmpty()
		m.SetName(name)
		dps := m.SetEmptyGauge().DataPoints()
		for i := range series {
			dp := dps.AppendEmpty()
			dp.SetIntValue(int64(i))
			dp.Attributes().PutStr("series", fmt.Sprintf("s-%05d", i))
			dp.Attributes().PutStr("container", "app")
		}
	}
}

func nodeMetrics(node string, series int, metrics ...string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	addSeries(md, map[string]any{"k8s.node.name": node, "service.name": "app"}, series, metrics...)
	return md
}

// resourcesByNode flattens the sink: node name → the resource attributes and data point counts.
func pointsByNode(sink *consumertest.MetricsSink) (map[string]int, map[string]map[string]any) {
	points, attrs := map[string]int{}, map[string]map[string]any{}
	for _, md := range sink.AllMetrics() {
		for _, rm := range md.ResourceMetrics().All() {
			raw := rm.Resource().Attributes().AsRaw()
			name, _ := raw["k8s.node.name"].(string)
			attrs[name] = raw
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					points[name] += m.Gauge().DataPoints().Len()
				}
			}
		}
	}
	return points, attrs
}

func counter(t *testing.T, tel *componenttest.Telemetry, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	if err != nil {
		return 0
	}
	want := attribute.NewSet(attrs...)
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

func TestMetricsFromEdgeNodeGetItsLabels(t *testing.T) {
	nodes := edgeFleet(3)
	h := newHarness(t, testConfig(), nodes...)
	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), nodeMetrics("edge-0001", 2, "cpu")))

	_, attrs := pointsByNode(h.sink)
	assert.Equal(t, map[string]any{
		"k8s.node.name": "edge-0001",
		"service.name":  "app",
		"region":        "us",
		"site":          "us-site-1",
		"node_group":    "group-1",
		"node_ready":    "true",
	}, attrs["edge-0001"])
	assert.Equal(t, int64(1), counter(t, h.tel, "otelcol_processor_edgenode_resources", attribute.String("outcome", outcomeEnriched)))
}

func TestNodeChangesShowUp(t *testing.T) {
	nodes := edgeFleet(2)
	h := newHarness(t, testConfig(), nodes...)
	ctx := context.Background()

	changed := nodes[1]
	changed.Labels = map[string]string{kube.LabelRegion: "moon", kube.LabelNodeGroup: "lunar"}
	_, err := h.client.CoreV1().Nodes().Update(ctx, kubeNode(changed, corev1.ConditionUnknown), metav1.UpdateOptions{})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		h.sink.Reset()
		if err := h.proc.ConsumeMetrics(ctx, nodeMetrics("edge-0001", 1, "cpu")); err != nil {
			return false
		}
		_, attrs := pointsByNode(h.sink)
		a := attrs["edge-0001"]
		return a["region"] == "moon" && a["node_group"] == "lunar" && a["node_ready"] == "unknown"
	}, 5*time.Second, 20*time.Millisecond)
	_, attrs := pointsByNode(h.sink)
	assert.NotContains(t, attrs["edge-0001"], "site", "a label removed from the node is no longer added")
}

func TestUnknownNodesPassUntouchedAndCounted(t *testing.T) {
	h := newHarness(t, testConfig(), edgeFleet(3)...)
	md := pmetric.NewMetrics()
	addSeries(md, map[string]any{"k8s.node.name": "not-in-cluster", "region": "sender-says"}, 3, "cpu")
	addSeries(md, map[string]any{"service.name": "no-node-at-all"}, 2, "cpu", "mem")
	want, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	require.NoError(t, err)

	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), md))

	require.Len(t, h.sink.AllMetrics(), 1)
	got, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(h.sink.AllMetrics()[0])
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(got))
	assert.Equal(t, int64(1), counter(t, h.tel, "otelcol_processor_edgenode_resources", attribute.String("outcome", outcomeUnknown)))
	assert.Equal(t, int64(1), counter(t, h.tel, "otelcol_processor_edgenode_resources", attribute.String("outcome", outcomeNoIdentity)))
	assert.Zero(t, counter(t, h.tel, "otelcol_processor_edgenode_resources", attribute.String("outcome", outcomeEnriched)))
}

func TestFindsNodeByResourceAddress(t *testing.T) {
	cfg := testConfig()
	cfg.NodeFrom = []NodeSource{{From: FromResourceAttribute, Name: "host.ip"}}
	nodes := edgeFleet(3)
	h := newHarness(t, cfg, nodes...)
	md := pmetric.NewMetrics()
	addSeries(md, map[string]any{"host.ip": nodes[2].IP}, 1, "cpu")
	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), md))
	_, attrs := pointsByNode(h.sink)
	require.Contains(t, attrs, "edge-0002")
	assert.Equal(t, "apac", attrs["edge-0002"]["region"])
}

func TestSeriesExplosionIsCappedForThatNodeOnly(t *testing.T) {
	const (
		nodeCount   = 50
		normal      = 10 // series per metric on a healthy node
		perNode     = 100
		perMetric   = 60
		exploding   = "edge-0013"
		explosion   = 2000
		explosion2  = 500
		bigMetric   = "app_http_requests_total"
		otherMetric = "app_request_duration_seconds"
	)
	cfg := testConfig()
	cfg.Guard.MaxSeriesPerNode = perNode
	cfg.Guard.MaxSeriesPerMetric = perMetric
	h := newHarness(t, cfg, edgeFleet(nodeCount)...)
	ctx := context.Background()
	healthy := []string{"cpu", "mem", "net"}

	send := func() {
		var wg sync.WaitGroup
		for i := range nodeCount {
			name := fmt.Sprintf("edge-%04d", i)
			wg.Go(func() {
				md := nodeMetrics(name, normal, healthy...)
				if name == exploding {
					addSeries(md, map[string]any{"k8s.node.name": name, "service.name": "app"}, explosion, bigMetric)
					addSeries(md, map[string]any{"k8s.node.name": name, "service.name": "app"}, explosion2, otherMetric)
				}
				assert.NoError(t, h.proc.ConsumeMetrics(ctx, md))
			})
		}
		wg.Wait()
	}

	// healthy metrics take 30; the big metric its per-metric 60; the other one the 10 left.
	wantDropped := map[string]int64{bigMetric: explosion - perMetric, otherMetric: explosion2 - (perNode - 3*normal - perMetric)}
	for round := 1; round <= 2; round++ {
		h.sink.Reset()
		send()
		points, _ := pointsByNode(h.sink)
		for i := range nodeCount {
			name := fmt.Sprintf("edge-%04d", i)
			want := 3 * normal
			if name == exploding {
				want = perNode
			}
			assert.Equal(t, want, points[name], "round %d node %s", round, name)
		}
		for metricName, dropped := range wantDropped {
			attrs := []attribute.KeyValue{attribute.String("metric", metricName), attribute.String("node", exploding)}
			assert.Equal(t, dropped, counter(t, h.tel, "otelcol_processor_edgenode_dropped_series", attrs...),
				"round %d: a series is counted once per window", round)
			assert.Equal(t, int64(round)*dropped, counter(t, h.tel, "otelcol_processor_edgenode_dropped_data_points", attrs...),
				"round %d: every dropped point is counted", round)
		}
	}
	for i := range nodeCount {
		if name := fmt.Sprintf("edge-%04d", i); name != exploding {
			assert.Zero(t, counter(t, h.tel, "otelcol_processor_edgenode_dropped_data_points",
				attribute.String("metric", "cpu"), attribute.String("node", name)))
		}
	}

	warnings := h.logs.FilterMessageSnippet("over its series limit").All()
	require.Len(t, warnings, 1, "the report is rate limited to one per node and log_interval")
	fields := warnings[0].ContextMap()
	assert.Equal(t, exploding, fields["node"])
	assert.Equal(t, bigMetric, fields["metric"])
}

func TestEveryPointDroppedSkipsTheBatch(t *testing.T) {
	cfg := testConfig()
	cfg.Guard.MaxSeriesPerNode = 2
	cfg.Guard.MaxSeriesPerMetric = 0
	h := newHarness(t, cfg, edgeFleet(1)...)
	ctx := context.Background()
	require.NoError(t, h.proc.ConsumeMetrics(ctx, nodeMetrics("edge-0000", 2, "cpu")))
	require.NoError(t, h.proc.ConsumeMetrics(ctx, nodeMetrics("edge-0000", 5, "mem")))
	assert.Len(t, h.sink.AllMetrics(), 1, "the second batch had nothing left to pass on")
	assert.Equal(t, 2, h.sink.DataPointCount())
}

func TestGuardOffPassesEverything(t *testing.T) {
	cfg := testConfig()
	cfg.Guard.Enabled = false
	h := newHarness(t, cfg, edgeFleet(1)...)
	require.NoError(t, h.proc.ConsumeMetrics(context.Background(), nodeMetrics("edge-0000", 5000, "cpu")))
	assert.Equal(t, 5000, h.sink.DataPointCount())
}

func TestStartFailsWhenTheNodeListNeverArrives(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("apiserver unreachable")
	})
	cfg := testConfig()
	cfg.WaitForMetadataTimeout = 200 * time.Millisecond
	set, _, _ := settings(t)
	proc, err := newFactory(fakeRegistry(client)).CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	err = proc.Start(context.Background(), componenttest.NewNopHost())
	require.ErrorContains(t, err, "wait_for_metadata_timeout")
	require.NoError(t, proc.Shutdown(context.Background()))
}

func TestStartFailsOnBadKubeconfig(t *testing.T) {
	cfg := testConfig()
	cfg.AuthType = kube.AuthKubeConfig
	cfg.KubeConfig = "/nonexistent/kubeconfig"
	set, _, _ := settings(t)
	proc, err := NewFactory().CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	err = proc.Start(context.Background(), componenttest.NewNopHost())
	require.ErrorContains(t, err, "/nonexistent/kubeconfig")
	require.NoError(t, proc.Shutdown(context.Background()))
}

func TestStartFailsOutsideACluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	set, _, _ := settings(t)
	proc, err := NewFactory().CreateMetrics(context.Background(), set, createDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	require.ErrorContains(t, proc.Start(context.Background(), componenttest.NewNopHost()), "serviceAccount")
}

func TestShutdownWithoutStart(t *testing.T) {
	set, _, _ := settings(t)
	f := NewFactory()
	cfg := f.CreateDefaultConfig()
	m, err := f.CreateMetrics(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, m.Shutdown(context.Background()))
	l, err := f.CreateLogs(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, l.Shutdown(context.Background()))
	tr, err := f.CreateTraces(context.Background(), set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, tr.Shutdown(context.Background()))
}

func TestAddrIP(t *testing.T) {
	assert.Empty(t, addrIP(nil))
	assert.Equal(t, "10.0.0.7", addrIP(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 4317}))
	assert.Equal(t, "10.0.0.7", addrIP(fakeAddr("10.0.0.7:4317")))
	assert.Equal(t, "fd00::1", addrIP(fakeAddr("[fd00::1]:4317")))
	assert.Equal(t, "10.0.0.7", addrIP(fakeAddr("10.0.0.7")))
}

type fakeAddr string

func (a fakeAddr) Network() string { return "tcp" }
func (a fakeAddr) String() string  { return string(a) }
