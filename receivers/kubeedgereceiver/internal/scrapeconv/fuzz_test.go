package scrapeconv

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// FuzzParseAndConvert feeds arbitrary bodies through the scrape path: body checks, parsing,
// conversion and the cross-scrape cache. It must never panic, and a failed scrape must append
// nothing.
func FuzzParseAndConvert(f *testing.F) {
	f.Add([]byte("# TYPE a counter\na_total{x=\"1\"} 3 1000\n"), []byte("a_total{x=\"1\"} 4\n"))
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"), []byte("h_count 1\n"))
	f.Add([]byte("# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n# EOF\n"), []byte(""))
	f.Add([]byte("# TYPE x gauge\n# UNIT x seconds\nx 1\n# EOF\n"), []byte("x NaN\n"))
	f.Add([]byte("a{le=\"bad\"} 1\n"), []byte("a 1"))
	if body, err := fixtureBytes("metrics-kubelet-1.21.txt"); err == nil {
		f.Add(body[:4096], body[4096:8192])
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		c := New(Options{HonorTimestamps: true, SampleLimit: 1000, TargetLabels: targetLabels})
		for _, body := range [][]byte{first, second, first} {
			mt, err := MediaType(body, "")
			if err != nil {
				continue
			}
			ms := pmetric.NewMetricSlice()
			if _, err := c.Convert(body, mt, 1000, ms); err != nil && ms.Len() != 0 {
				t.Fatalf("failed scrape appended %d metrics: %v", ms.Len(), err)
			}
		}
		c.Stale(2000, pmetric.NewMetricSlice())
	})
}
