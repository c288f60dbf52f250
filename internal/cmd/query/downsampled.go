package query

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Thanos' compactor downsamples blocks of 40 hours and more into 5-minute and 1-hour blocks
// (github.com/thanos-io/thanos pkg/compact/downsample). Each chunk of such a block holds five
// aggregates of one window series: the count of raw samples, their sum, min, max, and a counter
// (the raw counter with resets removed, closed by the window's last raw value). The chunk's
// encoding byte is 0xff and its data is, for each aggregate in that order, a uvarint length (0:
// the aggregate is absent), then one encoding byte and that many bytes of an ordinary chunk.
//
// edgetel-query reads them as Thanos Query does, so that both give the same answers over the same
// bucket: the aggregate read follows the function around the selector (aggregatesFor), and a
// query reads a downsampled block only where no block of a finer resolution holds the range.

const encAggr = chunkenc.Encoding(0xff)

type aggregate int

const (
	aggrCount aggregate = iota
	aggrSum
	aggrMin
	aggrMax
	aggrCounter
)

// aggregatesFor is Thanos Query's choice of aggregates for the function f applied to a selector
// (pkg/query/querier.go aggrsFromFunc): count and sum (read as their average) unless f needs
// another.
func aggregatesFor(f string) []aggregate {
	switch {
	case f == "min" || strings.HasPrefix(f, "min_"):
		return []aggregate{aggrMin}
	case f == "max" || strings.HasPrefix(f, "max_"):
		return []aggregate{aggrMax}
	case f == "count" || strings.HasPrefix(f, "count_"):
		return []aggregate{aggrCount}
	case strings.HasPrefix(f, "sum_"): // not "sum": summing series wants their values
		return []aggregate{aggrSum}
	case f == "increase" || f == "rate" || f == "irate" || f == "resets" || f == "xincrease" || f == "xrate":
		return []aggregate{aggrCounter}
	}
	return []aggregate{aggrCount, aggrSum}
}

// aggrChunk is a downsampled chunk as the block's chunk reader hands it over.
type aggrChunk []byte

// get returns one aggregate's chunk; nil without error when the block did not store it.
func (c aggrChunk) get(a aggregate) (chunkenc.Chunk, error) {
	b := []byte(c)
	for i := aggrCount; ; i++ {
		l, n := binary.Uvarint(b)
		if n < 1 || (l > 0 && l >= uint64(len(b)-n)) { // l bytes after the encoding byte
			return nil, fmt.Errorf("downsampled chunk: aggregate %d: bad length", i)
		}
		b = b[n:]
		if l == 0 {
			if i == a {
				return nil, nil
			}
			continue
		}
		data := b[:l+1]
		b = b[l+1:]
		if i == a {
			return chunkenc.FromData(chunkenc.Encoding(data[0]), data[1:])
		}
	}
}

func (c aggrChunk) Bytes() []byte             { return c }
func (aggrChunk) Encoding() chunkenc.Encoding { return encAggr }
func (aggrChunk) Appender() (chunkenc.Appender, error) {
	return nil, errors.New("downsampled chunks are read-only")
}
func (aggrChunk) Compact()          {}
func (c *aggrChunk) Reset(b []byte) { *c = b }

// NumSamples is the number of windows.
func (c aggrChunk) NumSamples() int {
	if cnt, err := c.get(aggrCount); err == nil && cnt != nil {
		return cnt.NumSamples()
	}
	return 0
}

// Iterator fails: a downsampled chunk has no samples of its own until an aggregate is chosen,
// and reading it as raw data would be wrong silently.
func (aggrChunk) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return failedIterator{chunkenc.NewNopIterator(), errors.New("downsampled chunk read without choosing an aggregate")}
}

// aggrPool is Prometheus' chunk pool that also hands out downsampled chunks.
type aggrPool struct{ chunkenc.Pool }

func (p aggrPool) Get(e chunkenc.Encoding, b []byte) (chunkenc.Chunk, error) {
	if e == encAggr {
		c := aggrChunk(b)
		return &c, nil
	}
	return p.Pool.Get(e, b)
}

func (p aggrPool) Put(c chunkenc.Chunk) error {
	if c.Encoding() == encAggr {
		return nil
	}
	return p.Pool.Put(c)
}

// downsampledQuerier reads a downsampled block within [mint, maxt], and of that only the
// ranges no finer block holds (serve, closed-open, sorted).
type downsampledQuerier struct {
	cq         storage.ChunkQuerier
	mint, maxt int64
	serve      [][2]int64
}

func newDownsampledQuerier(b *tsdb.Block, mint, maxt int64, serve [][2]int64) (storage.Querier, error) {
	cq, err := tsdb.NewBlockChunkQuerier(b, mint, maxt)
	if err != nil {
		return nil, err
	}
	return &downsampledQuerier{cq: cq, mint: mint, maxt: maxt, serve: serve}, nil
}

func (q *downsampledQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	h := storage.SelectHints{Start: q.mint, End: q.maxt}
	if hints != nil {
		h = *hints
	}
	// Whole chunks: trimming would re-encode them through Iterator, which a downsampled chunk
	// does not have. The series iterator bounds the samples instead.
	h.DisableTrimming = true
	return &aggrSeriesSet{
		ChunkSeriesSet: q.cq.Select(ctx, sortSeries, &h, ms...),
		aggrs:          aggregatesFor(h.Func),
		mint:           max(q.mint, h.Start),
		maxt:           min(q.maxt, h.End),
		serve:          q.serve,
	}
}

func (q *downsampledQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.cq.LabelValues(ctx, name, hints, ms...)
}

func (q *downsampledQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.cq.LabelNames(ctx, hints, ms...)
}

func (q *downsampledQuerier) Close() error { return q.cq.Close() }

type aggrSeriesSet struct {
	storage.ChunkSeriesSet
	aggrs      []aggregate
	mint, maxt int64
	serve      [][2]int64
	cur        *aggrSeries // a new one each Next: a merging reader holds several at once
	err        error
}

// Next decodes the whole series: a downsampled series has few samples (288 a day at 5m), and
// a decoding error then fails the query instead of ending a series early.
func (s *aggrSeriesSet) Next() bool {
	if s.err != nil || !s.ChunkSeriesSet.Next() {
		return false
	}
	cs := s.ChunkSeriesSet.At()
	pts, err := s.points(cs.Iterator(nil))
	if err != nil {
		s.err = fmt.Errorf("read downsampled series %s: %w", cs.Labels(), err)
		return false
	}
	s.cur = &aggrSeries{lset: cs.Labels(), pts: pts}
	return true
}

// points reads the series' chunks as Thanos Query does (pkg/query/iter.go): the counter
// aggregate as one counter with its resets removed, any other aggregate never going back in
// time; then keeps the samples within the query and the served ranges.
func (s *aggrSeriesSet) points(it chunks.Iterator) (fpoints, error) {
	var all fpoints
	for it.Next() {
		var err error
		if all, err = appendAggregate(all, it.At().Chunk, s.aggrs); err != nil {
			return nil, err
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	if len(s.aggrs) == 1 && s.aggrs[0] == aggrCounter {
		all = removeResets(all)
	} else {
		all = forwardOnly(all)
	}
	return slices.DeleteFunc(all, func(p fpoint) bool { return !s.serves(p.t) }), nil
}

func (s *aggrSeriesSet) serves(t int64) bool {
	if t < s.mint || t > s.maxt {
		return false
	}
	for _, r := range s.serve {
		if t >= r[0] && t < r[1] {
			return true
		}
	}
	return false
}

func (s *aggrSeriesSet) At() storage.Series { return s.cur }

func (s *aggrSeriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.ChunkSeriesSet.Err()
}

type aggrSeries struct {
	lset labels.Labels
	pts  fpoints
}

func (s *aggrSeries) Labels() labels.Labels { return s.lset }

func (s *aggrSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIterator(s.pts)
}

// appendAggregate appends the chosen aggregates of one chunk (a raw chunk as it is): one of
// them, or the average of count and sum.
func appendAggregate(dst fpoints, c chunkenc.Chunk, aggrs []aggregate) (fpoints, error) {
	ac, ok := c.(*aggrChunk)
	if !ok {
		return appendFloats(dst, c.Iterator(nil))
	}
	var read [2]fpoints
	for i, a := range aggrs {
		chk, err := ac.get(a)
		if err != nil || chk == nil {
			return dst, err
		}
		if read[i], err = appendFloats(nil, chk.Iterator(nil)); err != nil {
			return dst, err
		}
	}
	if len(aggrs) == 1 {
		return append(dst, read[0]...), nil
	}
	count, sum := read[0], read[1]
	if len(count) != len(sum) {
		return dst, errors.New("downsampled chunk: sum and count have different lengths")
	}
	for i := range count {
		if count[i].t != sum[i].t {
			return dst, errors.New("downsampled chunk: sum and count at different times")
		}
		dst = append(dst, fpoint{count[i].t, sum[i].f / count[i].f})
	}
	return dst, nil
}

func appendFloats(dst fpoints, it chunkenc.Iterator) (fpoints, error) {
	for it.Next() == chunkenc.ValFloat {
		t, f := it.At()
		dst = append(dst, fpoint{t, f})
	}
	return dst, it.Err()
}

// forwardOnly drops samples that do not move forward in time (chunks of overlapping blocks).
func forwardOnly(pts fpoints) fpoints {
	out := pts[:0]
	for _, p := range pts {
		if len(out) == 0 || p.t > out[len(out)-1].t {
			out = append(out, p)
		}
	}
	return out
}

// removeResets reads consecutive counter aggregates as one counter without resets, as Thanos'
// ApplyCounterResetsSeriesIterator does. Each chunk ends with its window's true last raw value at
// the timestamp of the sample before it: that value, compared with the next chunk's first,
// tells whether the counter reset between chunks. It is not a sample of its own.
func removeResets(pts fpoints) fpoints {
	out := pts[:0]
	var last, total float64
	for _, p := range pts {
		switch {
		case math.IsNaN(p.f):
		case len(out) == 0:
			last, total = p.f, p.f
			out = append(out, p)
		case p.t > out[len(out)-1].t:
			if p.f >= last {
				total += p.f - last
			} else {
				total += p.f
			}
			last = p.f
			out = append(out, fpoint{p.t, total})
		case p.t == out[len(out)-1].t:
			last = p.f
		}
	}
	return out
}

// fpoint is one float sample; fpoints are a series' samples for storage.NewListSeriesIterator.
type fpoint struct {
	t int64
	f float64
}

func (p fpoint) T() int64                    { return p.t }
func (fpoint) ST() int64                     { return 0 }
func (p fpoint) F() float64                  { return p.f }
func (fpoint) H() *histogram.Histogram       { return nil }
func (fpoint) FH() *histogram.FloatHistogram { return nil }
func (fpoint) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (p fpoint) Copy() chunks.Sample         { return p }

type fpoints []fpoint

func (s fpoints) Get(i int) chunks.Sample { return s[i] }
func (s fpoints) Len() int                { return len(s) }

// failedIterator has no samples and one error.
type failedIterator struct {
	chunkenc.Iterator
	err error
}

func (it failedIterator) Err() error { return it.err }
