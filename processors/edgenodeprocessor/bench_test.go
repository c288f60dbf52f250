package edgenodeprocessor

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/metadata"
)

// benchBatch is one batch from a fleet of nodes: per node one resource with metrics×series
// gauge points, each with three attributes like a cadvisor series.
func benchBatch(nodes, metrics, series int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for n := range nodes {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("k8s.node.name", fmt.Sprintf("edge-%04d", n))
		rm.Resource().Attributes().PutStr("service.name", "kubelet")
		sm := rm.ScopeMetrics().AppendEmpty()
		for m := range metrics {
			met := sm.Metrics().AppendEmpty()
			met.SetName(fmt.Sprintf("container_metric_%d", m))
			dps := met.SetEmptyGauge().DataPoints()
			for s := range series {
				dp := dps.AppendEmpty()
				dp.SetDoubleValue(float64(s))
				dp.Attributes().PutStr("namespace", "default")
				dp.Attributes().PutStr("pod", fmt.Sprintf("app-%d", s))
				dp.Attributes().PutStr("container", "app")
			}
		}
	}
	return md
}

func benchProcessor(b *testing.B, guardOn bool, nodes int) *edgeNodeProcessor {
	cfg := createDefaultConfig().(*Config)
	cfg.Guard.Enabled = guardOn
	p, err := newProcessorOf(processortest.NewNopSettings(metadata.Type), cfg, newNodeSources(nil), true)
	require.NoError(b, err)
	for _, n := range edgeFleet(nodes) {
		p.cache.Upsert(kube.FromKube(kubeNode(n, corev1.ConditionTrue)))
	}
	return p
}

// BenchmarkProcessMetrics measures the processor's own cost per data point for a batch from
// 1,000 nodes (100 points each) whose series are all known: the steady state of a healthy fleet.
func BenchmarkProcessMetrics(b *testing.B) {
	const nodes, metrics, series = 1000, 10, 10
	for _, guardOn := range []bool{false, true} {
		b.Run(fmt.Sprintf("guard=%v", guardOn), func(b *testing.B) {
			p := benchProcessor(b, guardOn, nodes)
			md := benchBatch(nodes, metrics, series)
			ctx := context.Background()
			// Warm up: the first pass enriches, which changes the resources once.
			for range 2 {
				_, err := p.processMetrics(ctx, md)
				require.NoError(b, err)
			}
			points := md.DataPointCount()
			require.Equal(b, nodes*metrics*series, points)
			// This machine is shared: wall time depends on the neighbours, so the figure that
			// counts is this thread's CPU time.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := threadCPU(b)
			for b.Loop() {
				if _, err := p.processMetrics(ctx, md); err != nil {
					b.Fatal(err)
				}
			}
			cpu := threadCPU(b) - cpu0
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*points), "wall-ns/point")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*points), "cpu-ns/point")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func threadCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	require.NoError(b, unix.Getrusage(unix.RUSAGE_THREAD, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
