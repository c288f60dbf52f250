package scrapeconv

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// churnBody is scrape i of a target whose metric names change every scrape: HELP and TYPE
// lines for names that appear once, plus one steady series.
func churnBody(i, names int) []byte {
	var b strings.Builder
	for n := range names {
		fmt.Fprintf(&b, "# HELP churn_%d_%d A name seen once.\n# TYPE churn_%d_%d gauge\n", i, n, i, n)
	}
	fmt.Fprintf(&b, "# HELP churn_%d_value One series.\n# TYPE churn_%d_value counter\nchurn_%d_value 1\nsteady 1\n", i, i, i)
	return []byte(b.String())
}

// The converter's state holds what the last scrape declared, not everything ever seen: names
// that change every scrape (HELP/TYPE lines with no samples, families) do not pile up.
func TestMetadataAndFamiliesAreEvicted(t *testing.T) {
	c := New(Options{})
	for i := range 50 {
		_, err := c.Convert(churnBody(i, 100), MediaText, int64(i)*1000, pmetric.NewMetricSlice())
		require.NoError(t, err)
		assert.LessOrEqual(t, len(c.meta), 101, "scrape %d: metadata of earlier scrapes kept", i)
		assert.LessOrEqual(t, len(c.families), 2, "scrape %d: families of earlier scrapes kept", i)
	}
}

// bombBody is scrape i of a cardinality bomb: n series never seen before.
func bombBody(i, n int) []byte {
	var b strings.Builder
	b.WriteString("# TYPE bomb gauge\n")
	for s := range n {
		fmt.Fprintf(&b, "bomb{scrape=\"%d\",id=\"%d\"} 1\n", i, s)
	}
	return []byte(b.String())
}

// A target past its series limit fails every scrape, each with new series: the failed scrapes
// leave nothing behind, so the cache stays what the last good scrape left.
func TestFailedScrapesLeaveNoState(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		err  error
	}{
		{"series_limit", Options{SeriesLimit: 500}, ErrSeriesLimit},
		{"sample_limit", Options{SampleLimit: 500}, ErrSampleLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := New(tc.opts)
			good := []byte("# TYPE up gauge\nup 1\n# TYPE other counter\nother_total 3\n")
			_, err := c.Convert(good, MediaText, 0, pmetric.NewMetricSlice())
			require.NoError(t, err)
			series, groups, families, meta := len(c.seriesAt), len(c.groups), len(c.families), len(c.meta)
			for i := 1; i <= 20; i++ {
				_, err := c.Convert(bombBody(i, 2000), MediaText, int64(i)*1000, pmetric.NewMetricSlice())
				require.ErrorIs(t, err, tc.err)
				assert.Equal(t, series, len(c.seriesAt), "series")
				assert.Equal(t, series, c.series.Len(), "series index")
				assert.Equal(t, groups, len(c.groups), "groups")
				assert.Equal(t, families, len(c.families), "families")
				assert.Equal(t, meta, len(c.meta), "metadata")
				assert.LessOrEqual(t, cap(c.seriesAt), 2*series+64, "capacity the bomb grew")
				assert.LessOrEqual(t, cap(c.groups), 2*groups+64, "capacity the bomb grew")
			}
			// The good target still converts as before, staleness state intact.
			dest := pmetric.NewMetricSlice()
			st, err := c.Convert(good, MediaText, 21000, dest)
			require.NoError(t, err)
			assert.Equal(t, 2, st.PostRelabel)
			assert.Zero(t, st.Stale)
		})
	}
}

// More HELP/TYPE names than the series limit fail the scrape: metadata costs memory too, and
// no sample limit counts it.
func TestSeriesLimitCountsMetricNames(t *testing.T) {
	c := New(Options{SeriesLimit: 50})
	_, err := c.Convert(churnBody(0, 100), MediaText, 0, pmetric.NewMetricSlice())
	require.ErrorIs(t, err, ErrSeriesLimit)
	assert.Empty(t, c.meta)
	_, err = c.Convert(churnBody(0, 10), MediaText, 0, pmetric.NewMetricSlice())
	require.NoError(t, err)
}
