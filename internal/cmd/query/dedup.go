package query

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// Deduplication on read, as Thanos Query does it with --query.replica-label: series that differ
// only in the replica labels are one series, the labels are dropped from the answer, and the
// replicas' samples are merged with Thanos' penalty algorithm (pkg/dedup in Thanos v0.42), so
// that two replicas scraping the same target at slightly different moments give the sample rate
// of one, and a gap in one replica is filled from the other. Written here because Thanos' own
// package would bring all of Thanos into this module; the answers are checked against real
// Thanos Query (TestDeduplicationMatchesThanosQuery).

// dedupQueryable wraps a queryable with deduplication over replicaLabels.
type dedupQueryable struct {
	chunkSource
	replicaLabels []string
}

// chunkSource is what deduplication reads: besides the queryable itself, every series with
// its chunks as they are stored (untrimmed, those of every block and head, overlapping or not),
// because Thanos decides where to merge replicas by the chunks' time ranges.
type chunkSource interface {
	storage.SampleAndChunkQueryable
	storedChunks(mint, maxt int64) (storage.ChunkQuerier, error)
}

// withDedup deduplicates q's series over replicaLabels; with none, q is returned as it is.
func withDedup(q chunkSource, replicaLabels []string) storage.SampleAndChunkQueryable {
	if len(replicaLabels) == 0 {
		return q
	}
	return dedupQueryable{chunkSource: q, replicaLabels: replicaLabels}
}

func (d dedupQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := d.chunkSource.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	cq, err := d.storedChunks(mint, maxt)
	if err != nil {
		q.Close()
		return nil, err
	}
	return &dedupQuerier{Querier: q, chunks: cq, mint: mint, maxt: maxt, replicaLabels: d.replicaLabels}, nil
}

// dedupQuerier answers label queries from the queryable's querier and Select from the chunks.
type dedupQuerier struct {
	storage.Querier
	chunks        storage.ChunkQuerier
	mint, maxt    int64
	replicaLabels []string
}

func (q *dedupQuerier) Close() error {
	return errors.Join(q.Querier.Close(), q.chunks.Close())
}

// Select merges the series that are equal without the replica labels, sorted by what is left.
func (q *dedupQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	h := storage.SelectHints{Start: q.mint, End: q.maxt}
	if hints != nil {
		h = *hints
	}
	// Whole chunks, as a store gateway sends them: their time ranges decide what overlaps.
	h.DisableTrimming = true
	set := q.chunks.Select(ctx, true, &h, ms...)
	type replica struct {
		lset   labels.Labels
		chunks []chunks.Meta
	}
	var all []replica
	var it chunks.Iterator
	for set.Next() {
		s := set.At()
		r := replica{lset: stripLabels(s.Labels(), q.replicaLabels)}
		it = s.Iterator(it)
		for it.Next() {
			r.chunks = append(r.chunks, it.At())
		}
		if err := it.Err(); err != nil {
			return storage.ErrSeriesSet(err)
		}
		all = append(all, r)
	}
	if err := set.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	slices.SortStableFunc(all, func(a, b replica) int { return labels.Compare(a.lset, b.lset) })
	isCounter := isCounterFunc(h.Func)
	var out []storage.Series
	for i := 0; i < len(all); {
		var cs []chunks.Meta
		j := i
		for ; j < len(all) && labels.Equal(all[i].lset, all[j].lset); j++ {
			cs = append(cs, all[j].chunks...)
		}
		out = append(out, &dedupSeries{lset: all[i].lset, runs: overlapSplit(uniqueChunks(cs)),
			mint: q.mint, maxt: q.maxt, isCounter: isCounter})
		i = j
	}
	return &seriesSlice{series: out, warnings: set.Warnings()}
}

func (q *dedupQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	names, ws, err := q.Querier.LabelNames(ctx, hints, ms...)
	return slices.DeleteFunc(names, func(n string) bool { return slices.Contains(q.replicaLabels, n) }), ws, err
}

func stripLabels(ls labels.Labels, drop []string) labels.Labels {
	b := labels.NewBuilder(ls)
	b.Del(drop...)
	return b.Labels()
}

type seriesSlice struct {
	series   []storage.Series
	i        int
	warnings annotations.Annotations
}

func (s *seriesSlice) Next() bool {
	s.i++
	return s.i <= len(s.series)
}
func (s *seriesSlice) At() storage.Series                { return s.series[s.i-1] }
func (s *seriesSlice) Err() error                        { return nil }
func (s *seriesSlice) Warnings() annotations.Annotations { return s.warnings }

// From here on the code is Thanos' (v0.42.4 pkg/store/proxy_merge.go, pkg/dedup/iter.go,
// pkg/query/iter.go; Apache-2.0, The Thanos Authors), kept as close to it as this package allows
// so that answers match Thanos Query's: the chunks of all replicas of a series, identical ones
// once, are split into runs that do not overlap; where runs overlap, the penalty merge of two
// replicas, chained for more, and for counter functions (rate, increase, irate, resets) the
// adjustment that keeps a switch to a replica with a lower counter from looking like a reset.
// Where one replica ends and another begins without overlapping chunks, every sample is kept.

// uniqueChunks sorts chunks as Thanos' proxy does (storepb.AggrChunk.Compare: by min time, then
// max time, then encoding, then data, larger data first) and keeps one of identical ones.
func uniqueChunks(cs []chunks.Meta) []chunks.Meta {
	slices.SortFunc(cs, func(a, b chunks.Meta) int {
		if c := cmp.Compare(a.MinTime, b.MinTime); c != 0 {
			return c
		}
		if c := cmp.Compare(a.MaxTime, b.MaxTime); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Chunk.Encoding(), b.Chunk.Encoding()); c != 0 {
			return c
		}
		return bytes.Compare(b.Chunk.Bytes(), a.Chunk.Bytes())
	})
	return slices.CompactFunc(cs, func(a, b chunks.Meta) bool { return bytes.Equal(a.Chunk.Bytes(), b.Chunk.Bytes()) })
}

// overlapSplit is dedup.NewOverlapSplit: each chunk, in order, joins the first run whose last
// chunk ends before it begins, or starts a run of its own.
func overlapSplit(cs []chunks.Meta) [][]chunks.Meta {
	var runs [][]chunks.Meta
next:
	for _, c := range cs {
		for i, r := range runs {
			if r[len(r)-1].MaxTime < c.MinTime {
				runs[i] = append(r, c)
				continue next
			}
		}
		runs = append(runs, []chunks.Meta{c})
	}
	return runs
}

// dedupSeries is one series read from several runs of chunks.
type dedupSeries struct {
	lset       labels.Labels
	runs       [][]chunks.Meta
	mint, maxt int64
	isCounter  bool
}

func (d *dedupSeries) Labels() labels.Labels { return d.lset }

func (d *dedupSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	if len(d.runs) == 0 {
		return chunkenc.NewNopIterator()
	}
	run := func(cs []chunks.Meta) chunkenc.Iterator {
		return &boundedIterator{it: &runIterator{chunks: cs}, mint: d.mint, maxt: d.maxt}
	}
	if len(d.runs) == 1 {
		return run(d.runs[0])
	}
	wrap := func(cs []chunks.Meta) adjustableIterator {
		if d.isCounter {
			return &counterAdjustIterator{Iterator: run(cs)}
		}
		return noopAdjustIterator{Iterator: run(cs)}
	}
	var it adjustableIterator = wrap(d.runs[0])
	for _, r := range d.runs[1:] {
		it = newPenaltyIterator(it, wrap(r))
	}
	return it
}

// runIterator reads a run of chunks, in time order and not overlapping, one after the other
// (chunkSeriesIterator in Thanos), reusing one chunk iterator.
type runIterator struct {
	chunks []chunks.Meta
	i      int               // the chunk cur reads; len(chunks) once done
	cur    chunkenc.Iterator // nil until the first chunk is opened
	err    error
}

func (it *runIterator) Next() chunkenc.ValueType {
	if it.i >= len(it.chunks) {
		return chunkenc.ValNone
	}
	if it.cur == nil {
		it.cur = it.chunks[0].Chunk.Iterator(nil)
	}
	for {
		if vt := it.cur.Next(); vt != chunkenc.ValNone {
			return vt
		}
		if it.err = it.cur.Err(); it.err != nil || it.i+1 >= len(it.chunks) {
			it.i = len(it.chunks)
			return chunkenc.ValNone
		}
		it.i++
		it.cur = it.chunks[it.i].Chunk.Iterator(it.cur)
	}
}

// Seek skips the chunks that end before t without reading them.
func (it *runIterator) Seek(t millis) chunkenc.ValueType {
	if it.i >= len(it.chunks) {
		return chunkenc.ValNone
	}
	if it.cur == nil || it.chunks[it.i].MaxTime < t {
		j := it.i
		for j < len(it.chunks) && it.chunks[j].MaxTime < t {
			j++
		}
		if j >= len(it.chunks) {
			it.i = j
			return chunkenc.ValNone
		}
		if it.cur == nil || j != it.i {
			it.i, it.cur = j, it.chunks[j].Chunk.Iterator(it.cur)
		}
	}
	if vt := it.cur.Seek(t); vt != chunkenc.ValNone {
		return vt
	}
	return it.Next()
}

func (it *runIterator) At() (int64, float64) { return it.cur.At() }
func (it *runIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.cur.AtHistogram(h)
}
func (it *runIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.cur.AtFloatHistogram(fh)
}
func (it *runIterator) AtT() int64  { return it.cur.AtT() }
func (it *runIterator) AtST() int64 { return it.cur.AtST() }
func (it *runIterator) Err() error  { return it.err }

// boundedIterator is dedup.NewBoundedSeriesIterator: only samples within [mint, maxt].
type boundedIterator struct {
	it         chunkenc.Iterator
	mint, maxt int64
}

func (it *boundedIterator) Seek(t millis) chunkenc.ValueType {
	if t > it.maxt {
		return chunkenc.ValNone
	}
	return it.it.Seek(max(t, it.mint))
}

func (it *boundedIterator) Next() chunkenc.ValueType {
	vt := it.it.Next()
	if vt == chunkenc.ValNone {
		return vt
	}
	if it.it.AtT() < it.mint {
		if vt = it.Seek(it.mint); vt == chunkenc.ValNone {
			return vt
		}
	}
	if it.it.AtT() <= it.maxt {
		return vt
	}
	return chunkenc.ValNone
}

func (it *boundedIterator) At() (int64, float64) { return it.it.At() }
func (it *boundedIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.it.AtHistogram(h)
}
func (it *boundedIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.it.AtFloatHistogram(fh)
}
func (it *boundedIterator) AtT() int64  { return it.it.AtT() }
func (it *boundedIterator) AtST() int64 { return it.it.AtST() }
func (it *boundedIterator) Err() error  { return it.it.Err() }

// isCounterFunc is Thanos' guess of a counter from the function the series is selected for.
func isCounterFunc(f string) bool {
	return f == "increase" || f == "rate" || f == "irate" || f == "resets"
}

// adjustableIterator lets a replica's values be raised to the last value taken from another.
type adjustableIterator interface {
	chunkenc.Iterator
	adjustAtValue(lastFloatValue float64)
}

type noopAdjustIterator struct{ chunkenc.Iterator }

func (noopAdjustIterator) adjustAtValue(float64) {}

// counterAdjustIterator raises a replica's counter by what it lags behind the replica the merge
// switched from: a counter cannot go down, so the switch must not read as a reset.
type counterAdjustIterator struct {
	chunkenc.Iterator
	errAdjust float64
}

func (it *counterAdjustIterator) adjustAtValue(lastFloatValue float64) {
	if _, v := it.At(); lastFloatValue > v {
		it.errAdjust += lastFloatValue - v
	}
}

func (it *counterAdjustIterator) At() (int64, float64) {
	t, v := it.Iterator.At()
	return t, v + it.errAdjust
}

// millis is int64 under another name only so that go vet's stdmethods check does not take
// chunkenc.Iterator's Seek(int64) ValueType for a malformed io.Seeker.
type millis = int64

// initialPenalty: timestamps are milliseconds and scrape intervals seconds long.
const initialPenalty = 5000

// penaltyIterator takes the earlier of the two replicas' next samples; the replica not taken must
// then jump twice the distance of the last step, so that two replicas a little apart do not
// double the sample rate, while a replica that stops (a killed collector) hands over after at
// most that penalty.
type penaltyIterator struct {
	a, b       adjustableIterator
	aval, bval chunkenc.ValueType
	lastT      int64
	lastIter   chunkenc.Iterator
	penA, penB int64
	useA       bool
}

func newPenaltyIterator(a, b adjustableIterator) *penaltyIterator {
	return &penaltyIterator{a: a, b: b, lastT: math.MinInt64, lastIter: a, useA: true, aval: a.Next(), bval: b.Next()}
}

func (it *penaltyIterator) Next() chunkenc.ValueType {
	lastFloatVal, isFloatVal := it.lastFloatVal()
	lastUseA := it.useA
	defer func() {
		if it.useA != lastUseA && isFloatVal {
			it.adjustAtValue(lastFloatVal)
		}
	}()
	if it.aval != chunkenc.ValNone {
		it.aval = it.a.Seek(it.lastT + 1 + it.penA)
	}
	if it.bval != chunkenc.ValNone {
		it.bval = it.b.Seek(it.lastT + 1 + it.penB)
	}
	if it.aval == chunkenc.ValNone {
		it.useA = false
		if it.bval != chunkenc.ValNone {
			it.lastT, it.lastIter, it.penB = it.b.AtT(), it.b, 0
		}
		return it.bval
	}
	if it.bval == chunkenc.ValNone {
		it.useA = true
		it.lastT, it.lastIter, it.penA = it.a.AtT(), it.a, 0
		return it.aval
	}
	ta, tb := it.a.AtT(), it.b.AtT()
	it.useA = ta <= tb
	if it.useA {
		it.penB = initialPenalty
		if it.lastT != math.MinInt64 {
			it.penB = 2 * (ta - it.lastT)
		}
		it.penA, it.lastT, it.lastIter = 0, ta, it.a
		return it.aval
	}
	it.penA = initialPenalty
	if it.lastT != math.MinInt64 {
		it.penA = 2 * (tb - it.lastT)
	}
	it.penB, it.lastT, it.lastIter = 0, tb, it.b
	return it.bval
}

func (it *penaltyIterator) lastFloatVal() (float64, bool) {
	if (it.useA && it.aval == chunkenc.ValFloat) || (!it.useA && it.bval == chunkenc.ValFloat) {
		_, v := it.lastIter.At()
		return v, true
	}
	return 0, false
}

func (it *penaltyIterator) adjustAtValue(lastFloatValue float64) {
	if it.aval == chunkenc.ValFloat {
		it.a.adjustAtValue(lastFloatValue)
	}
	if it.bval == chunkenc.ValFloat {
		it.b.adjustAtValue(lastFloatValue)
	}
}

// Seek walks with Next rather than seeking the replicas, so that no gap is jumped over.
func (it *penaltyIterator) Seek(t millis) chunkenc.ValueType {
	for {
		if ts := it.AtT(); ts >= t {
			if it.useA {
				return it.a.Seek(ts)
			}
			return it.b.Seek(ts)
		}
		if it.Next() == chunkenc.ValNone {
			return chunkenc.ValNone
		}
	}
}

func (it *penaltyIterator) At() (int64, float64) { return it.lastIter.At() }

func (it *penaltyIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.lastIter.AtHistogram(h)
}

func (it *penaltyIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.lastIter.AtFloatHistogram(fh)
}

func (it *penaltyIterator) AtT() int64 {
	if it.useA {
		return it.a.AtT()
	}
	return it.b.AtT()
}

func (it *penaltyIterator) AtST() int64 { return it.lastIter.AtST() }

func (it *penaltyIterator) Err() error {
	if err := it.a.Err(); err != nil {
		return err
	}
	return it.b.Err()
}
