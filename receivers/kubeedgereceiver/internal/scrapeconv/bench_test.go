package scrapeconv

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// BenchmarkConvertCadvisor converts the cadvisor capture with a warm cache, as every scrape after
// a target's first does, and reports time and allocations per sample. The target labels are
// left to the resource, as the receiver sends them.
func BenchmarkConvertCadvisor(b *testing.B) {
	body, mt := cadvisorCapture(b)
	c := New(Options{TargetLabels: targetLabels})
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
}

// cadvisorCapture is the cadvisor capture and its media type.
func cadvisorCapture(b *testing.B) ([]byte, string) {
	body := fixture(b, "metrics-cadvisor-1.35.txt")
	mt, err := MediaType(body, "text/plain; charset=utf-8")
	if err != nil {
		b.Fatal(err)
	}
	return body, mt
}
