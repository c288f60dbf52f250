package scrapeconv

import (
	"runtime"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// BenchmarkRetainedPerSeries reports the heap a Converter keeps between scrapes per cached
// series of the cadvisor capture: the receiver holds one Converter per target, so this is
// the receiver's memory per active series.
func BenchmarkRetainedPerSeries(b *testing.B) {
	body, mt := cadvisorCapture(b)
	const targets = 20
	var before, after runtime.MemStats
	for b.Loop() {
		convs := make([]*Converter, targets)
		runtime.GC()
		runtime.ReadMemStats(&before)
		series := 0
		for i := range convs {
			convs[i] = New(Options{HonorTimestamps: true, TargetLabels: targetLabels})
			for s := range 2 {
				st, err := convs[i].Convert(body, mt, 1_800_000_000_000+int64(s)*15_000, pmetric.NewMetricSlice())
				if err != nil {
					b.Fatal(err)
				}
				series += st.Scraped / 2
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(series), "B/series")
		runtime.KeepAlive(convs)
	}
}
