package sampleconv

import (
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// BenchmarkConvertTargetLabels converts one kubeedge-receiver batch of 3,000 samples (30
// families of 100 containers) whose target labels (node, metrics_path and two mapped node
// labels) travel once per endpoint rather than on every data point.
func BenchmarkConvertTargetLabels(b *testing.B) {
	md, ms := targetBatch()
	for f := range 30 {
		m := ms.AppendEmpty()
		m.SetName(fmt.Sprintf("container_metric_%d", f))
		dps := m.SetEmptyGauge().DataPoints()
		for i := range 100 {
			dp := dps.AppendEmpty()
			dp.SetTimestamp(stamp(t0))
			dp.SetDoubleValue(float64(i))
			dp.Attributes().PutStr("container", fmt.Sprintf("c-%d", i))
			dp.Attributes().PutStr("namespace", "kube-system")
			dp.Attributes().PutStr("pod", fmt.Sprintf("pod-%d", i/2))
		}
	}
	c := New(targetOptions())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Convert(md, discard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*3000), "ns/sample")
}

// targetBatch is the receiver's shape: the target labels on the endpoint's resource.
func targetBatch() (pmetric.Metrics, pmetric.MetricSlice) {
	md, ms := newMetrics()
	attrs := md.ResourceMetrics().At(0).Resource().Attributes()
	for _, kv := range [][2]string{{"metrics_path", "/metrics/cadvisor"}, {"node", "edge-1"}, {"region", "eu"}, {"site", "site-7"}} {
		attrs.PutStr(kv[0], kv[1])
	}
	return md, ms
}

func targetOptions() Options { return DefaultOutputConfig().Options() }
