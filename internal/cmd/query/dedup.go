package query

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
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
	storage.SampleAndChunkQueryable
	replicaLabels []string
}

// withDedup deduplicates q's series over replicaLabels; with none, q is returned as it is.
func withDedup(q storage.SampleAndChunkQueryable, replicaLabels []string) storage.SampleAndChunkQueryable {
	if len(replicaLabels) == 0 {
		return q
	}
	return dedupQueryable{SampleAndChunkQueryable: q, replicaLabels: replicaLabels}
}

func (d dedupQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := d.SampleAndChunkQueryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &dedupQuerier{Querier: q, replicaLabels: d.replicaLabels}, nil
}

type dedupQuerier struct {
	storage.Querier
	replicaLabels []string
}

// Select merges the series that are equal without the replica labels, sorted by what is left.
func (q *dedupQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	set := q.Querier.Select(ctx, true, hints, ms...)
	type replica struct {
		lset   labels.Labels
		series storage.Series
	}
	var all []replica
	for set.Next() {
		s := set.At()
		all = append(all, replica{lset: stripLabels(s.Labels(), q.replicaLabels), series: s})
	}
	if err := set.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	// Stable: replicas of one series keep the order the merge of the blocks gave them.
	slices.SortStableFunc(all, func(a, b replica) int { return labels.Compare(a.lset, b.lset) })
	var out []storage.Series
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && labels.Equal(all[i].lset, all[j].lset) {
			j++
		}
		group := make([]storage.Series, 0, j-i)
		for _, r := range all[i:j] {
			group = append(group, r.series)
		}
		out = append(out, &dedupSeries{lset: all[i].lset, replicas: group, isCounter: hints != nil && isCounterFunc(hints.Func)})
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

// dedupSeries is one series read from several replicas. From here on the code is Thanos'
// (v0.42.4 pkg/dedup/iter.go, Apache-2.0, The Thanos Authors), kept as close to it as this
// package allows so that answers match Thanos Query's: the penalty merge of two replicas, chained
// for more, and for counter functions (rate, increase, irate, resets) the adjustment that keeps a
// switch to a replica with a lower counter from looking like a reset.
type dedupSeries struct {
	lset      labels.Labels
	replicas  []storage.Series
	isCounter bool
}

func (d *dedupSeries) Labels() labels.Labels { return d.lset }

func (d *dedupSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	wrap := func(s storage.Series) adjustableIterator {
		if d.isCounter {
			return &counterAdjustIterator{Iterator: s.Iterator(nil)}
		}
		return noopAdjustIterator{Iterator: s.Iterator(nil)}
	}
	var it adjustableIterator = wrap(d.replicas[0])
	for _, r := range d.replicas[1:] {
		it = newPenaltyIterator(it, wrap(r))
	}
	return it
}

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
