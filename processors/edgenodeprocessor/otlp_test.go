package edgenodeprocessor

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/kube"
)

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// An edge application sends OTLP over gRPC with no node attribute at all: the real OTLP receiver
// puts the sender's address in client.Info, and the processor finds the node by it.
func TestOTLPFromEdgeNodeFoundBySenderAddress(t *testing.T) {
	node := kube.Node{Name: "edge-loopback", IP: "127.0.0.1", Labels: map[string]string{
		kube.LabelRegion: "eu", kube.LabelSite: "eu-lab", kube.LabelNodeGroup: "lab",
	}}
	client := fake.NewClientset(kubeNode(node, corev1.ConditionTrue))
	cfg := testConfig()
	cfg.NodeFrom = []NodeSource{{From: FromConnection}}
	set, _, _ := settings(t)
	sink := new(consumertest.MetricsSink)
	ctx := context.Background()
	proc, err := newFactory(fakeRegistry(client)).CreateMetrics(ctx, set, cfg, sink)
	require.NoError(t, err)
	require.NoError(t, proc.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, proc.Shutdown(ctx)) })

	endpoint := freeLoopbackAddr(t)
	rf := otlpreceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"protocols": map[string]any{"grpc": map[string]any{"endpoint": endpoint, "include_metadata": true}},
	}).Unmarshal(rcfg))
	recv, err := rf.CreateMetrics(ctx, receivertest.NewNopSettings(rf.Type()), rcfg, proc)
	require.NoError(t, err)
	require.NoError(t, recv.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, recv.Shutdown(ctx)) })

	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	md := pmetric.NewMetrics()
	addSeries(md, map[string]any{"service.name": "edge-app"}, 3, "app_requests_total")
	exportCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = pmetricotlp.NewGRPCClient(conn).Export(exportCtx, pmetricotlp.NewExportRequestFromMetrics(md), grpc.WaitForReady(true))
	require.NoError(t, err)

	require.Equal(t, 3, sink.DataPointCount())
	attrs := sink.AllMetrics()[0].ResourceMetrics().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, map[string]any{
		"service.name": "edge-app", "k8s.node.name": "edge-loopback",
		"region": "eu", "site": "eu-lab", "node_group": "lab", "node_ready": "true",
	}, attrs)
}

func TestLogsAndTracesAreEnriched(t *testing.T) {
	nodes := edgeFleet(2)
	client := fake.NewClientset(kubeNode(nodes[0], corev1.ConditionFalse), kubeNode(nodes[1], corev1.ConditionTrue))
	f := newFactory(fakeRegistry(client))
	ctx := context.Background()
	set, _, _ := settings(t)

	logSink := new(consumertest.LogsSink)
	lp, err := f.CreateLogs(ctx, set, testConfig(), logSink)
	require.NoError(t, err)
	require.NoError(t, lp.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, lp.Shutdown(ctx)) })
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().Resource().Attributes().PutStr("k8s.node.name", "edge-0000")
	require.NoError(t, lp.ConsumeLogs(ctx, ld))
	got := logSink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, "eu", got["region"])
	assert.Equal(t, "false", got["node_ready"])

	traceSink := new(consumertest.TracesSink)
	tp, err := f.CreateTraces(ctx, set, testConfig(), traceSink)
	require.NoError(t, err)
	require.NoError(t, tp.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, tp.Shutdown(ctx)) })
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().Resource().Attributes().PutStr("k8s.node.name", "edge-0001")
	require.NoError(t, tp.ConsumeTraces(ctx, td))
	got = traceSink.AllTraces()[0].ResourceSpans().At(0).Resource().Attributes().AsRaw()
	assert.Equal(t, "us", got["region"])
	assert.Equal(t, "group-1", got["node_group"])
}
