package scrapeconv

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// subset keeps every comment line and the sample lines whose index keep selects.
func subset(body []byte, keep func(i int) bool) []byte {
	var out bytes.Buffer
	i := 0
	for _, line := range bytes.SplitAfter(body, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if line[0] == '#' || keep(i) {
			out.Write(line)
		}
		if line[0] != '#' {
			i++
		}
	}
	return out.Bytes()
}

// live is the output without staleness markers and start times, which depend on history: what
// a converter with a cache must give exactly as a fresh one does.
func live(t *testing.T, ms pmetric.MetricSlice) []string {
	ms.RemoveIf(func(m pmetric.Metric) bool {
		switch m.Type() {
		case pmetric.MetricTypeGauge:
			m.Gauge().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return dp.Flags().NoRecordedValue() })
			return m.Gauge().DataPoints().Len() == 0
		case pmetric.MetricTypeSum:
			dps := m.Sum().DataPoints()
			dps.RemoveIf(func(dp pmetric.NumberDataPoint) bool { return dp.Flags().NoRecordedValue() })
			for i := range dps.Len() {
				dps.At(i).SetStartTimestamp(0)
			}
			return dps.Len() == 0
		case pmetric.MetricTypeHistogram:
			dps := m.Histogram().DataPoints()
			dps.RemoveIf(func(dp pmetric.HistogramDataPoint) bool { return dp.Flags().NoRecordedValue() })
			for i := range dps.Len() {
				dps.At(i).SetStartTimestamp(0)
			}
			return dps.Len() == 0
		case pmetric.MetricTypeSummary:
			dps := m.Summary().DataPoints()
			dps.RemoveIf(func(dp pmetric.SummaryDataPoint) bool { return dp.Flags().NoRecordedValue() })
			for i := range dps.Len() {
				dps.At(i).SetStartTimestamp(0)
			}
			return dps.Len() == 0
		}
		return false
	})
	var out []string
	for i := range ms.Len() {
		md := pmetric.NewMetrics()
		ms.At(i).CopyTo(md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty())
		j, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
		require.NoError(t, err)
		out = append(out, string(j))
	}
	return out
}

// As series come and go, the cache evicts and renumbers series, groups, families, label sets and
// bucket bounds. Whatever it went through, a long-lived converter reads each body as a fresh one
// does.
func TestCacheThroughEvictionsMatchesAFreshConverter(t *testing.T) {
	subsets := []struct {
		name string
		keep func(int) bool
	}{
		{"all", func(int) bool { return true }},
		{"even", func(i int) bool { return i%2 == 0 }},
		{"not every third", func(i int) bool { return i%3 != 0 }},
		{"second half", func(i int) bool { return i >= 700 }},
		{"first half", func(i int) bool { return i < 700 }},
		{"all", func(int) bool { return true }},
		{"odd", func(i int) bool { return i%2 == 1 }},
	}
	for _, name := range []string{"metrics-cadvisor-1.35.txt", "metrics-kubelet-1.21.txt"} {
		t.Run(name, func(t *testing.T) {
			body := fixture(t, name)
			long := New(Options{HonorTimestamps: true, TargetLabels: targetLabels})
			for round := range 2 {
				for i, s := range subsets {
					b := subset(body, s.keep)
					ms := int64(1_800_000_000_000 + (round*len(subsets)+i)*15_000)
					got, want := pmetric.NewMetricSlice(), pmetric.NewMetricSlice()
					_, err := long.Convert(b, MediaText, ms, got)
					require.NoError(t, err)
					_, err = New(Options{HonorTimestamps: true, TargetLabels: targetLabels}).Convert(b, MediaText, ms, want)
					require.NoError(t, err)
					// Compared metric by metric: a whole body's JSON is too long for a readable diff.
					lw, lg := live(t, want), live(t, got)
					require.Len(t, lg, len(lw), "round %d, %s", round, s.name)
					for k := range lw {
						require.True(t, lw[k] == lg[k], "round %d, %s:\nwant %.2000s\ngot  %.2000s", round, s.name, lw[k], lg[k])
					}
					require.Equal(t, len(long.seriesAt), long.series.Len())
				}
			}
		})
	}
}
