package scrapeconv

import (
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/flatindex"
)

// Eviction keeps exactly the live groups, whatever their place, and the series that point at
// them follow them to their new places.
func TestEvictKeepsLiveGroupsAndRemapsSeries(t *testing.T) {
	c := New(Options{})
	// b comes first: when it goes, a's family is renumbered too.
	first := []byte("b{x=\"1\"} 4\na{x=\"1\"} 1\na{x=\"2\"} 2\na{x=\"3\"} 3\na{x=\"4\"} 5\n")
	_, err := c.Convert(first, MediaText, 1000, pmetric.NewMetricSlice())
	require.NoError(t, err)
	require.Len(t, c.groups, 5)
	dest := pmetric.NewMetricSlice()
	st, err := c.Convert([]byte("a{x=\"2\"} 20\na{x=\"4\"} 50\n"), MediaText, 2000, dest)
	require.NoError(t, err)
	assert.Equal(t, 3, st.Stale)
	require.Len(t, c.groups, 2)
	require.Len(t, c.seriesAt, 2)
	assert.Equal(t, 2, c.series.Len())
	for _, s := range c.seriesAt {
		require.Less(t, int(s.g), len(c.groups))
		i, ok := flatindex.Find(&c.series, c.seriesAt, s.key)
		require.True(t, ok)
		require.Equal(t, s, c.seriesAt[i])
	}
	// The fast path reads the kept series into the right groups.
	dest = pmetric.NewMetricSlice()
	_, err = c.Convert([]byte("a{x=\"2\"} 21\na{x=\"4\"} 51\n"), MediaText, 3000, dest)
	require.NoError(t, err)
	require.Equal(t, 1, dest.Len())
	assert.Equal(t, "a", dest.At(0).Name())
	require.Len(t, c.fams, 1)
	assert.Equal(t, uint32(0), c.fams[0].idx)
	got := map[string]float64{}
	dps := dest.At(0).Gauge().DataPoints()
	for i := range dps.Len() {
		x, _ := dps.At(i).Attributes().Get("x")
		got[x.Str()] = dps.At(i).DoubleValue()
	}
	assert.Equal(t, map[string]float64{"2": 21, "4": 51}, got)
}

// Two groups whose hashes collide are told apart by their labels.
func TestGroupForComparesLabelsNotJustHashes(t *testing.T) {
	c := New(Options{})
	f, other := &family{idx: 0, name: "x"}, &family{idx: 1, name: "y"}
	c.fams = append(c.fams, f, other)
	a, b := labels.FromStrings("a", "1"), labels.FromStrings("a", "2")
	sa, sb := c.syms.set(a), c.syms.set(b)
	ga := c.groupFor(f, sa)
	// Put b's group under a's key, ahead of a's: the lookup of a must still find a.
	c.groups = append(c.groups, group{fam: f.idx, attrs: sb})
	key := c.groupKey(f, sa)
	c.byLabels[key] = append([]uint32{uint32(len(c.groups) - 1)}, c.byLabels[key]...)
	assert.Equal(t, ga, c.groupFor(f, sa))
	assert.NotEqual(t, ga, c.groupFor(other, sa), "same labels, other family")
}

// Equal label sets share one encoding; the table holds each string once and round-trips.
func TestSymbols(t *testing.T) {
	var syms symbols
	a1, a2 := labels.FromStrings("a", "1", "b", "x"), labels.FromStrings("a", "1", "b", "x")
	s1, s2 := syms.set(a1), syms.set(a2)
	assert.Equal(t, s1, s2, "one copy")
	s3 := syms.set(labels.FromStrings("b", "1"))
	assert.Equal(t, []string{"a", "1", "b", "x"}, syms.strs)
	assert.Equal(t, a1, syms.labels(s1))
	assert.Equal(t, 2, count(syms.at(s1)))
	// More than 127 strings: references take two bytes.
	b := labels.NewScratchBuilder(200)
	for i := range 200 {
		b.Add(fmt.Sprintf("n%03d", i), fmt.Sprint(i))
	}
	big := b.Labels()
	sb := syms.set(big)
	assert.Equal(t, big, syms.labels(sb))
	assert.Equal(t, 200, count(syms.at(sb)))
	// Compacting keeps what is passed, drops the rest.
	out := syms.compact([]uint32{s3})
	assert.Equal(t, []string{"b", "1"}, syms.strs)
	assert.Len(t, syms.arena, 3, "one set left: its length and one pair")
	assert.Equal(t, labels.FromStrings("b", "1"), syms.labels(out[0]))
}

// After a scrape the converter holds nothing of its output: that belongs to the consumer.
func TestConvertReleasesOutput(t *testing.T) {
	c := New(Options{TargetLabels: targetLabels})
	body := []byte("# TYPE a counter\na_total 1\n# TYPE b gauge\nb{x=\"1\"} 2\n")
	for range 2 {
		_, err := c.Convert(body, MediaText, 1000, pmetric.NewMetricSlice())
		require.NoError(t, err)
		require.NotEmpty(t, c.families)
		for _, f := range c.families {
			assert.Equal(t, pmetric.Metric{}, f.metric, f.name)
		}
	}
	c.Stale(2000, pmetric.NewMetricSlice())
	for _, f := range c.families {
		assert.Equal(t, pmetric.Metric{}, f.metric, f.name)
	}
}

// The indexes used only for new series are gone after the scrape; evicted groups and series go.
func TestIndexesAreDroppedAfterAScrape(t *testing.T) {
	c := New(Options{TargetLabels: targetLabels})
	_, err := c.Convert([]byte("a{x=\"1\"} 1\na{x=\"2\"} 1\nb{x=\"1\"} 1\n"), MediaText, 1000, pmetric.NewMetricSlice())
	require.NoError(t, err)
	require.Len(t, c.groups, 3)
	assert.Nil(t, c.syms.idx)
	assert.Nil(t, c.byLabels)
	_, err = c.Convert([]byte("a{x=\"1\"} 1\n"), MediaText, 2000, pmetric.NewMetricSlice())
	require.NoError(t, err)
	assert.Len(t, c.groups, 1)
	assert.Len(t, c.seriesAt, 1)
	assert.Equal(t, labels.FromStrings("x", "1"), c.syms.labels(c.groups[0].attrs))
	assert.Len(t, c.syms.strs, 2, "the strings of x=2 went with it")
}
