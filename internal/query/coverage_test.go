package query

import (
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/assert"

	"github.com/edgetel/edgetel/internal/bucket"
)

func meta(id byte, from, to int64, resolution int64, lbls map[string]string) *bucket.Meta {
	m := &bucket.Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.ULID{id}, MinTime: from, MaxTime: to}}
	m.Thanos.Labels, m.Thanos.Downsample.Resolution = lbls, resolution
	return m
}

// A range is missing when the bucket has it and no cached raw block of the same stream covers
// it: a downsampled copy beside the raw block is not missing, a downsampled block whose raw
// data the compactor deleted is, and so is a raw block the size bound left out.
func TestMissingBefore(t *testing.T) {
	a, b := map[string]string{"shard": "0"}, map[string]string{"shard": "1"}
	raw1, raw2 := meta(1, 0, 100, 0, a), meta(2, 100, 200, 0, a)
	down := meta(3, 0, 200, 300000, a)
	otherStream := meta(4, 0, 200, 300000, b)
	for _, c := range []struct {
		name          string
		metas, cached []*bucket.Meta
		want          int64
	}{
		{"all cached", []*bucket.Meta{raw1, raw2}, []*bucket.Meta{raw1, raw2}, 0},
		{"downsampled beside raw", []*bucket.Meta{raw1, raw2, down}, []*bucket.Meta{raw1, raw2}, 0},
		{"raw evicted", []*bucket.Meta{raw1, raw2}, []*bucket.Meta{raw2}, 100},
		{"raw deleted, only downsampled left", []*bucket.Meta{raw2, down}, []*bucket.Meta{raw2}, 100},
		{"a hole in the middle", []*bucket.Meta{raw1, meta(5, 100, 150, 0, a), raw2, down}, []*bucket.Meta{raw1, meta(6, 150, 200, 0, a)}, 150},
		{"another stream's downsampled", []*bucket.Meta{raw1, raw2, otherStream}, []*bucket.Meta{raw1, raw2}, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, missingBefore(c.metas, c.cached, map[ulid.ULID]bool{}))
		})
	}
	replaced := map[ulid.ULID]bool{raw1.ULID: true}
	assert.Zero(t, missingBefore([]*bucket.Meta{raw1, raw2}, []*bucket.Meta{raw2}, replaced), "a block replaced by a compacted one is not missing")
}
