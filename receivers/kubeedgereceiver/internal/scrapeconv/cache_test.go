package scrapeconv

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Groups sharing a hash chain: eviction keeps exactly the live ones, whatever their place.
func TestEvictGroupsKeepsLiveMembersOfAChain(t *testing.T) {
	c := New(Options{})
	c.gen = 5
	f := &family{name: "x"}
	mk := func(v string, gen uint64, next *group) *group {
		return &group{fam: f, attrs: labels.FromStrings("a", v), gen: gen, next: next}
	}
	c.groups[1] = mk("1", 5, mk("2", 4, mk("3", 5, nil))) // live, dead, live
	c.groups[2] = mk("4", 4, nil)                         // dead
	c.groups[3] = mk("5", 4, mk("6", 5, nil))             // dead head, live tail

	require.True(t, c.evictGroups())
	assert.ElementsMatch(t, []string{"1", "3"}, chainValues(c.groups[1]))
	assert.NotContains(t, c.groups, uint64(2))
	assert.Equal(t, []string{"6"}, chainValues(c.groups[3]))
	assert.False(t, c.evictGroups(), "nothing more to evict")
}

func chainValues(g *group) []string {
	var out []string
	for ; g != nil; g = g.next {
		out = append(out, g.attrs.Get("a"))
	}
	return out
}

// Two groups whose hashes collide are told apart by their labels.
func TestGroupForComparesLabelsNotJustHashes(t *testing.T) {
	c := New(Options{})
	f := &family{name: "x"}
	a, b := labels.FromStrings("a", "1"), labels.FromStrings("a", "2")
	ga := c.groupFor(f, a)
	// Put b's group behind a's key: the lookup of a must still find a, and of b, b.
	for k := range c.groups {
		c.groups[k] = &group{fam: f, attrs: b, next: ga}
	}
	assert.Same(t, ga, c.groupFor(f, a))
	other := &family{name: "y"}
	assert.NotSame(t, ga, c.groupFor(other, a), "same labels, other family")
}

// An interned label set is shared; one that collides with another's hash keeps its own copy.
func TestIntern(t *testing.T) {
	c := New(Options{})
	a1, a2 := labels.FromStrings("a", "1"), labels.FromStrings("a", "1")
	got := c.intern(a1)
	assert.Equal(t, a1, got)
	assert.Equal(t, a1, c.intern(a2))
	b := labels.FromStrings("b", "2")
	c.interned[b.Hash()] = labels.FromStrings("c", "3") // pretend a collision
	assert.Equal(t, b, c.intern(b))
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

// Series that go away leave the intern table with their groups.
func TestInternTableFollowsEviction(t *testing.T) {
	c := New(Options{TargetLabels: targetLabels})
	_, err := c.Convert([]byte("a{x=\"1\"} 1\na{x=\"2\"} 1\nb{x=\"1\"} 1\n"), MediaText, 1000, pmetric.NewMetricSlice())
	require.NoError(t, err)
	assert.Len(t, c.interned, 2, "a and b share x=1")
	_, err = c.Convert([]byte("a{x=\"1\"} 1\n"), MediaText, 2000, pmetric.NewMetricSlice())
	require.NoError(t, err)
	assert.Len(t, c.interned, 1)
	assert.Len(t, c.series, 1)
}
