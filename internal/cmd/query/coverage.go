package query

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/edgetel/edgetel/internal/bucket"
)

// missingBefore is the end (ms) of the newest range the bucket holds and the cache does not: raw
// blocks evicted by the size bound, and downsampled blocks that did not fit either. 0 when the cache
// holds everything the bucket has (a label query's range starts long before 0, so 0 must mean
// nothing missing, not "before the epoch"). A range held by a cached block of the same external
// labels is not missing, whatever its resolution, so the downsampled copies Thanos' compactor
// keeps beside raw blocks never count.
func missingBefore(metas, selected []*bucket.Meta, replaced map[ulid.ULID]bool) int64 {
	held := heldRanges(selected)
	var end int64
	for _, m := range metas {
		if !replaced[m.ULID] {
			end = max(end, uncoveredEnd(held[labelsKey(m.Thanos.Labels)], m.MinTime, m.MaxTime))
		}
	}
	return end
}

// uncoveredEnd is where the last part of [from, to) that the sorted ranges leave uncovered
// ends; 0 when they cover all of it.
func uncoveredEnd(ranges [][2]int64, from, to int64) int64 {
	gaps := uncovered(ranges, from, to)
	if len(gaps) == 0 {
		return 0
	}
	return gaps[len(gaps)-1][1]
}

// uncovered is the parts of [from, to) that the ranges (sorted by start) leave uncovered.
func uncovered(ranges [][2]int64, from, to int64) [][2]int64 {
	var gaps [][2]int64
	for _, r := range ranges {
		if from >= to {
			break
		}
		if r[1] <= from {
			continue
		}
		if r[0] > from {
			gaps = append(gaps, [2]int64{from, min(r[0], to)})
		}
		from = max(from, r[1])
	}
	if from < to {
		gaps = append(gaps, [2]int64{from, to})
	}
	return gaps
}

// heldRanges is the ranges of the blocks by external labels, each list sorted by start.
func heldRanges(metas []*bucket.Meta) map[string][][2]int64 {
	held := map[string][][2]int64{}
	for _, m := range metas {
		k := labelsKey(m.Thanos.Labels)
		held[k] = append(held[k], [2]int64{m.MinTime, m.MaxTime})
	}
	for k := range held {
		slices.SortFunc(held[k], func(a, b [2]int64) int { return int(min(max(a[0]-b[0], -1), 1)) })
	}
	return held
}

func labelsKey(l map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(l)) {
		fmt.Fprintf(&b, "%s=%q,", k, l[k])
	}
	return b.String()
}

// incompleteQuerier adds one warning to every answer of a query that reaches a range the cache
// does not hold, so Prometheus' API returns it in "warnings" and Grafana shows it on the panel.
type incompleteQuerier struct {
	storage.Querier
	warn error
}

func newIncompleteQuerier(before int64, why string) storage.Querier {
	return incompleteQuerier{Querier: storage.NoopQuerier(), warn: fmt.Errorf(
		"edgetel-query: samples before %s are in the bucket but not in this answer (%s)",
		time.UnixMilli(before).UTC().Format(time.RFC3339), why)}
}

func (q incompleteQuerier) annotations() annotations.Annotations {
	return annotations.New().Add(q.warn)
}

func (q incompleteQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return warnedSeriesSet{SeriesSet: storage.EmptySeriesSet(), ws: q.annotations()}
}

func (q incompleteQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, q.annotations(), nil
}

func (q incompleteQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, q.annotations(), nil
}

type warnedSeriesSet struct {
	storage.SeriesSet
	ws annotations.Annotations
}

func (s warnedSeriesSet) Warnings() annotations.Annotations { return s.ws }
