package objstoreexporter

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/flatindex"
)

func TestSeriesCacheInternsAndSweeps(t *testing.T) {
	c := newSeriesCache()
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	c.entry(a).ref = 7
	c.entry(b).ref = 8
	got := c.entry(a)
	assert.Equal(t, 7, int(got.ref))
	assert.True(t, labels.Equal(a, got.ls))
	assert.Equal(t, 2, c.len())

	c.sweep() // both seen in the last generation: kept
	assert.Equal(t, 2, c.len())
	c.entry(a)
	c.sweep() // b not seen since the previous sweep: forgotten
	assert.Equal(t, 1, c.len())
	assert.Equal(t, 7, int(c.entry(a).ref))
	assert.Equal(t, 0, int(c.entry(b).ref), "b comes back as a new series")
}

// A label set whose hash another cached one holds is served, never confused with it.
func TestSeriesCacheCollisionIsNotConfused(t *testing.T) {
	c := newSeriesCache()
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	c.entry(a).ref = 7
	// Forge the collision: b's hash now points at a's entry.
	c.entries[0].hash = b.Hash()
	flatindex.Rebuild(&c.index, c.entries)
	e := c.entry(b)
	require.True(t, labels.Equal(b, e.ls))
	assert.Equal(t, 0, int(e.ref), "a collided series never reuses another's ref")
	assert.Equal(t, 1, c.len(), "and is not cached")
}
