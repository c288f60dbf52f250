package query

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type tv struct {
	t int64
	v float64
}

func xorChunk(t *testing.T, samples ...tv) chunkenc.Chunk {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	require.NoError(t, err)
	for _, s := range samples {
		app.Append(0, s.t, s.v)
	}
	return c
}

// encodeAggr writes a downsampled chunk in Thanos' layout: for each aggregate a uvarint length,
// then the encoding byte and the chunk's bytes; a nil aggregate is a zero length.
func encodeAggr(chks [5]chunkenc.Chunk) *aggrChunk {
	var b []byte
	for _, c := range chks {
		if c == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(c.Bytes())))
		b = append(b, byte(c.Encoding()))
		b = append(b, c.Bytes()...)
	}
	ac := aggrChunk(b)
	return &ac
}

func TestAggregatesFollowTheFunction(t *testing.T) {
	for f, want := range map[string][]aggregate{
		"": {aggrCount, aggrSum}, "sum": {aggrCount, aggrSum}, "avg_over_time": {aggrCount, aggrSum},
		"rate": {aggrCounter}, "increase": {aggrCounter}, "max_over_time": {aggrMax}, "min": {aggrMin},
		"count_over_time": {aggrCount}, "sum_over_time": {aggrSum},
	} {
		assert.Equal(t, want, aggregatesFor(f), f)
	}
}

func pts(samples ...tv) fpoints {
	out := fpoints{}
	for _, s := range samples {
		out = append(out, fpoint{s.t, s.v})
	}
	return out
}

func TestAggrChunkReadsEachAggregate(t *testing.T) {
	ac := encodeAggr([5]chunkenc.Chunk{
		xorChunk(t, tv{300, 5}, tv{600, 4}),   // count
		xorChunk(t, tv{300, 10}, tv{600, 12}), // sum
		nil,                                   // min: absent
		xorChunk(t, tv{300, 3}, tv{600, 4}),   // max
		xorChunk(t, tv{1, 7}, tv{600, 9}),     // counter
	})
	assert.Equal(t, 2, ac.NumSamples())
	got, err := appendAggregate(nil, ac, []aggregate{aggrCount, aggrSum})
	require.NoError(t, err)
	assert.Equal(t, pts(tv{300, 2}, tv{600, 3}), got, "the average is sum/count")
	got, err = appendAggregate(nil, ac, []aggregate{aggrMax})
	require.NoError(t, err)
	assert.Equal(t, pts(tv{300, 3}, tv{600, 4}), got)
	got, err = appendAggregate(nil, ac, []aggregate{aggrMin})
	require.NoError(t, err)
	assert.Empty(t, got, "an absent aggregate has no samples")

	assert.Error(t, ac.Iterator(nil).Err(), "a downsampled chunk is never read as raw samples")
	_, err = aggrChunk([]byte{0xff, 0xff}).get(aggrSum)
	assert.Error(t, err, "a damaged chunk is an error, not a panic")
	huge := binary.AppendUvarint(nil, math.MaxUint64)
	_, err = aggrChunk(append(huge, 1, 2, 3)).get(aggrCount)
	assert.Error(t, err, "a length that overflows is an error, not a panic")
	_, err = appendAggregate(nil, encodeAggr([5]chunkenc.Chunk{xorChunk(t, tv{300, 5}), xorChunk(t, tv{300, 1}, tv{600, 2})}),
		[]aggregate{aggrCount, aggrSum})
	assert.Error(t, err, "count and sum of different lengths")
}

// The counter aggregate holds the counter with resets removed and ends each chunk with the
// window's true last raw value at a repeated timestamp; only that value tells whether the next
// chunk's first value is a reset. Here the raw counter went 10, 40, 3 (a reset), 8, 23.
func TestCounterAcrossChunksRemovesResets(t *testing.T) {
	in := pts(tv{0, 10}, tv{300, 40}, tv{600, 43}, tv{600, 3}, tv{900, 8}, tv{1200, 23}, tv{1200, 23})
	assert.Equal(t, pts(tv{0, 10}, tv{300, 40}, tv{600, 43}, tv{900, 48}, tv{1200, 63}), removeResets(in))
}

func TestOverlappingChunksNeverGoBack(t *testing.T) {
	in := pts(tv{100, 1}, tv{200, 2}, tv{150, 9}, tv{200, 9}, tv{300, 3})
	assert.Equal(t, pts(tv{100, 1}, tv{200, 2}, tv{300, 3}), forwardOnly(in))
}

func TestDownsampledBlockServesOnlyItsRanges(t *testing.T) {
	s := &aggrSeriesSet{mint: 150, maxt: 450, serve: [][2]int64{{0, 250}, {350, 1000}}}
	var kept []int64
	for _, ts := range []int64{100, 200, 300, 400, 500} {
		if s.serves(ts) {
			kept = append(kept, ts)
		}
	}
	assert.Equal(t, []int64{200, 400}, kept)
}

func TestUncoveredRanges(t *testing.T) {
	held := [][2]int64{{10, 20}, {30, 40}}
	assert.Equal(t, [][2]int64{{0, 10}, {20, 30}, {40, 50}}, uncovered(held, 0, 50))
	assert.Empty(t, uncovered(held, 12, 18))
	assert.Equal(t, int64(50), uncoveredEnd(held, 0, 50))
	assert.Equal(t, int64(0), uncoveredEnd(held, 30, 40))
}
