package scrapeconv

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// scrapeBoth runs the same sequence of bodies through a converter with the fast path and one
// without, and fails on any difference in error, stats or output.
func scrapeBoth(t *testing.T, bodies ...[]byte) (fast *Converter) {
	t.Helper()
	opts := Options{HonorTimestamps: true, SampleLimit: 5000, TargetLabels: targetLabels}
	fast, full := New(opts), New(opts)
	full.slowOnly = true
	var m pmetric.JSONMarshaler
	for i, body := range bodies {
		mt, err := MediaType(body, "")
		if err != nil {
			continue
		}
		scrapeMs := int64(1_000_000 + i*15_000)
		outFast, outFull := pmetric.NewMetrics(), pmetric.NewMetrics()
		stFast, errFast := fast.Convert(body, mt, scrapeMs, outFast.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics())
		stFull, errFull := full.Convert(body, mt, scrapeMs, outFull.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics())
		require.Equal(t, errFull == nil, errFast == nil, "scrape %d: fast %v, full %v", i, errFast, errFull)
		if errFull != nil {
			require.Equal(t, errFull.Error(), errFast.Error())
		}
		require.Equal(t, stFull, stFast, "scrape %d", i)
		jFast, err := m.MarshalMetrics(outFast)
		require.NoError(t, err)
		jFull, err := m.MarshalMetrics(outFull)
		require.NoError(t, err)
		require.Equal(t, string(jFull), string(jFast), "scrape %d", i)
	}
	return fast
}

// FuzzFastPathMatchesFullParser: whatever the bodies, reading them with the fast path gives
// exactly what Prometheus' parser alone gives — the same errors, counts, values, staleness.
func FuzzFastPathMatchesFullParser(f *testing.F) {
	f.Add([]byte("# TYPE a counter\na_total{x=\"1\"} 3 1000\n"), []byte("# TYPE a counter\na_total{x=\"1\"} 4\n"))
	f.Add([]byte("# HELP g x\n# TYPE g gauge\ng 1\ng{a=\"}\\\" \"} 2\n"), []byte("# HELP g x\n# TYPE g gauge\ng 1e3\ng{a=\"}\\\" \"} NaN 5\n\n"))
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"),
		[]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\nh_count 3\n"))
	f.Add([]byte("x 1\ny 2\n"), []byte("x  1\ny\t2\nx 0x1p3\ny 1_0\n"))
	f.Add([]byte("x 1\n"), []byte("x 1 -5\nx 1 5 \nx {a=\"b\"} 1\n"))
	f.Add([]byte("{\"x\"} 1\n"), []byte("{\"x\"} 2\n# TYPE x gauge\n"))
	f.Add([]byte("x 1\n"), []byte("x 1\x00\n"))
	if body, err := fixtureBytes("metrics-kubelet-1.21.txt"); err == nil {
		f.Add(body[:8192], body[:8192])
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		scrapeBoth(t, first, second, second, first)
	})
}

// On real captures the fast path is taken from the second scrape on, and gives what the full
// parser gives.
func TestFastPathOnCaptures(t *testing.T) {
	for _, name := range []string{"metrics-cadvisor-1.35.txt", "metrics-kubelet-1.21.txt", "metrics-resource-1.35.txt"} {
		t.Run(name, func(t *testing.T) {
			body := fixture(t, name)
			c := scrapeBoth(t, body, body)
			c.slowOnly = true // from here on, a fast path that gives up would be caught below
			st := Stats{}
			require.True(t, c.parseFast(body, 2_000_000, &st), "fast path refused a known body")
			assert.Positive(t, st.Scraped)
		})
	}
}

// A new series, a changed HELP text and a malformed line each send the scrape to the full
// parser, which decides.
func TestFastPathGivesUp(t *testing.T) {
	base := []byte("# HELP a help\n# TYPE a gauge\na{x=\"1\"} 1\n")
	for name, body := range map[string]string{
		"new series":   "# HELP a help\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 1\n",
		"new help":     "# HELP a other\n# TYPE a gauge\na{x=\"1\"} 1\n",
		"bad value":    "# HELP a help\n# TYPE a gauge\na{x=\"1\"} one\n",
		"two spaces":   "# HELP a help\n# TYPE a gauge\na{x=\"1\"}  1\n",
		"no newline":   "# HELP a help\n# TYPE a gauge\na{x=\"1\"} 1",
		"signed ts":    "# HELP a help\n# TYPE a gauge\na{x=\"1\"} 1 -1\n",
		"type changed": "# HELP a help\n# TYPE a counter\na{x=\"1\"} 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := scrapeBoth(t, base, []byte(body), base)
			_, err := c.Convert(base, MediaText, 3_000_000, pmetric.NewMetricSlice())
			require.NoError(t, err)
			assert.False(t, c.parseFast([]byte(body), 3_000_000, &Stats{}))
		})
	}
}
