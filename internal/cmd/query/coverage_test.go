package query

import (
	"context"
	"log/slog"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/bucket"
)

func meta(id byte, from, to int64, resolution int64, lbls map[string]string) *bucket.Meta {
	m := &bucket.Meta{BlockMeta: tsdb.BlockMeta{ULID: ulid.ULID{id}, MinTime: from, MaxTime: to}}
	m.Thanos.Labels, m.Thanos.Downsample.Resolution = lbls, resolution
	return m
}

// A range is missing when the bucket has it and no cached block of the same stream covers it: a
// downsampled copy beside the raw block is not missing (the raw block holds it), a raw block
// the size bound left out is, and so is a downsampled block that was not cached.
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

// The cache takes raw blocks first, newest first, then downsampled blocks, finest first, only
// where no block taken before holds the range; the size bound applies to all of them. A
// downsampled block serves only the parts of its range no finer block holds.
func TestSelectBlocksPrefersRawThenFinest(t *testing.T) {
	a := map[string]string{"shard": "0"}
	raw := meta(1, 1100, 1200, 0, a)          // raw retention deleted [1000, 1100)
	fiveM := meta(2, 1000, 1200, 300000, a)   // the 5m copy of [1000, 1200)
	hour := meta(3, 1000, 1200, 3600000, a)   // the 1h copy: everything is held by then
	oldHour := meta(4, 900, 1000, 3600000, a) // only a 1h block is left of this
	sizes := map[ulid.ULID]int64{raw.ULID: 10, fiveM.ULID: 3, hour.ULID: 1, oldHour.ULID: 1}
	ids := func(ms []*bucket.Meta) []byte {
		var out []byte
		for _, m := range ms {
			out = append(out, m.ULID[0])
		}
		return out
	}
	s := &Store{maxBytes: 100, logger: slog.New(slog.DiscardHandler)}
	all := []*bucket.Meta{hour, oldHour, fiveM, raw}
	want, missing, err := s.selectBlocks(context.Background(), all, sizes)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 4}, ids(want), "raw, then 5m for what raw lacks, then 1h for what neither holds")
	assert.Zero(t, missing)
	serve := serveRanges(want)
	assert.Equal(t, [][2]int64{{1000, 1100}}, serve[fiveM.ULID], "the 5m block answers only where raw data is gone")
	assert.Equal(t, [][2]int64{{900, 1000}}, serve[oldHour.ULID])
	assert.Nil(t, serve[raw.ULID])

	s.maxBytes = 13 // raw and the 5m block; the old hour does not fit
	want, missing, err = s.selectBlocks(context.Background(), all, sizes)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2}, ids(want))
	assert.Equal(t, int64(1000), missing, "the range only the old 1h block held")
	s.maxBytes = 11
	want, missing, err = s.selectBlocks(context.Background(), all, sizes)
	require.NoError(t, err)
	assert.Equal(t, []byte{1}, ids(want))
	assert.Equal(t, int64(1100), missing, "what only downsampled blocks held, and did not fit, is missing")
}
