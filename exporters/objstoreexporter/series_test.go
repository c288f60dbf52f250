package objstoreexporter

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSeriesCacheInternsAndSweeps(t *testing.T) {
	c := newSeriesCache()
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	require.Nil(t, c.get(a))
	ea := c.add(a)
	ea.ref = 7
	c.add(b)
	got := c.get(a)
	require.NotNil(t, got)
	assert.Equal(t, 7, int(got.ref))
	assert.True(t, labels.Equal(a, got.ls))

	c.sweep() // both seen in the last generation: kept
	assert.Equal(t, 2, c.len())
	c.get(a)
	c.sweep() // b not seen since the previous sweep: forgotten
	assert.Equal(t, 1, c.len())
	assert.Nil(t, c.get(b))
	assert.NotNil(t, c.get(a))
}
