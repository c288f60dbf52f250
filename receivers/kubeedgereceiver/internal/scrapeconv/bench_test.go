package scrapeconv

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// BenchmarkConvertCadvisor converts the cadvisor capture with a warm cache, as every scrape after
// a target's first does, and reports time and allocations per sample. The second case leaves
// node and metrics_path out of the target labels: what a design that carried them once per
// resource, instead of on every data point, would save here (issue 24).
func BenchmarkConvertCadvisor(b *testing.B) {
	body := fixture(b, "metrics-cadvisor-1.35.txt")
	mt, err := MediaType(body, "text/plain; charset=utf-8")
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tl   labels.Labels
	}{
		{"target_labels_on_points", targetLabels},
		{"job_instance_only", labels.FromStrings("job", "kubeedge", "instance", "edge-1")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := New(Options{TargetLabels: tc.tl})
			ts := int64(1_800_000_000_000)
			st, err := c.Convert(body, mt, ts, pmetric.NewMetricSlice())
			if err != nil {
				b.Fatal(err)
			}
			perScrape := float64(st.Scraped)
			b.ReportAllocs()
			for b.Loop() {
				ts += 15_000
				if _, err := c.Convert(body, mt, ts, pmetric.NewMetricSlice()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/perScrape, "ns/sample")
			allocs := testing.AllocsPerRun(3, func() {
				ts += 15_000
				_, _ = c.Convert(body, mt, ts, pmetric.NewMetricSlice())
			})
			b.ReportMetric(allocs/perScrape, "allocs/sample")
		})
	}
}
