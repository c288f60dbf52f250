package query

import (
	"context"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// withExternalLabels adds a block's Thanos external labels (meta.json thanos.labels) to every
// series it returns, as Thanos' store gateway does: the shipper keeps them out of the series so
// that each writer (cluster, shard) stays a distinct stream.
func withExternalLabels(q storage.Querier, ext map[string]string) storage.Querier {
	if len(ext) == 0 {
		return q
	}
	return &extQuerier{Querier: q, ext: ext}
}

type extQuerier struct {
	storage.Querier
	ext map[string]string
}

// anyName matches every series: a block query needs at least one matcher once the matchers on
// external labels are taken out.
var anyName = labels.MustNewMatcher(labels.MatchNotEqual, model.MetricNameLabel, "")

// split takes out the matchers on external labels; ok is false when one of them excludes the
// block's value, so nothing in the block can match.
func (q *extQuerier) split(ms []*labels.Matcher) (rest []*labels.Matcher, ok bool) {
	return splitExternal(q.ext, ms)
}

func splitExternal(ext map[string]string, ms []*labels.Matcher) (rest []*labels.Matcher, ok bool) {
	for _, m := range ms {
		v, isExt := ext[m.Name]
		if !isExt {
			rest = append(rest, m)
			continue
		}
		if !m.Matches(v) {
			return nil, false
		}
	}
	return rest, true
}

func (q *extQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	rest, ok := q.split(ms)
	if !ok {
		return storage.EmptySeriesSet()
	}
	if len(rest) == 0 {
		rest = []*labels.Matcher{anyName}
	}
	// Adding the same label pairs to every series keeps their sort order.
	return &extSeriesSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, rest...), ext: q.ext}
}

// withExternalLabelsChunks is withExternalLabels for the chunks deduplication reads; its label
// queries are not asked (they go to withExternalLabels').
func withExternalLabelsChunks(q storage.ChunkQuerier, ext map[string]string) storage.ChunkQuerier {
	if len(ext) == 0 {
		return q
	}
	return &extChunkQuerier{ChunkQuerier: q, ext: ext}
}

type extChunkQuerier struct {
	storage.ChunkQuerier
	ext map[string]string
}

func (q *extChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	rest, ok := splitExternal(q.ext, ms)
	if !ok {
		return storage.EmptyChunkSeriesSet()
	}
	if len(rest) == 0 {
		rest = []*labels.Matcher{anyName}
	}
	return &extChunkSeriesSet{ChunkSeriesSet: q.ChunkQuerier.Select(ctx, sortSeries, hints, rest...), ext: q.ext}
}

type extChunkSeriesSet struct {
	storage.ChunkSeriesSet
	ext map[string]string
}

func (s *extChunkSeriesSet) At() storage.ChunkSeries {
	inner := s.ChunkSeriesSet.At()
	return &extChunkSeries{ChunkSeries: inner, lset: addExternal(inner.Labels(), s.ext)}
}

type extChunkSeries struct {
	storage.ChunkSeries
	lset labels.Labels
}

func (s *extChunkSeries) Labels() labels.Labels { return s.lset }

func (q *extQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	rest, ok := q.split(ms)
	if !ok {
		return nil, nil, nil
	}
	names, ws, err := q.Querier.LabelNames(ctx, hints, rest...)
	if err != nil || len(names) == 0 {
		return names, ws, err
	}
	names = slices.Clone(names)
	for n := range q.ext {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, ws, nil
}

func (q *extQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	rest, ok := q.split(ms)
	if !ok {
		return nil, nil, nil
	}
	v, isExt := q.ext[name]
	if !isExt {
		return q.Querier.LabelValues(ctx, name, hints, rest...)
	}
	// The external value is there only if some series of the block matches.
	if len(rest) == 0 {
		rest = []*labels.Matcher{anyName}
	}
	ss := q.Querier.Select(ctx, false, nil, rest...)
	if ss.Next() {
		return []string{v}, ss.Warnings(), nil
	}
	return nil, ss.Warnings(), ss.Err()
}

type extSeriesSet struct {
	storage.SeriesSet
	ext map[string]string
}

func (s *extSeriesSet) At() storage.Series {
	inner := s.SeriesSet.At()
	return &extSeries{Series: inner, lset: addExternal(inner.Labels(), s.ext)}
}

func addExternal(ls labels.Labels, ext map[string]string) labels.Labels {
	b := labels.NewBuilder(ls)
	for k, v := range ext {
		b.Set(k, v)
	}
	return b.Labels()
}

type extSeries struct {
	storage.Series
	lset labels.Labels
}

func (s *extSeries) Labels() labels.Labels { return s.lset }
