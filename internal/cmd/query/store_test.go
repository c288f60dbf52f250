package query

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/edgetel/edgetel/internal/bucket"
)

func newStore(t *testing.T, bkt objstore.Bucket, dir string, maxBytes int64) *Store {
	t.Helper()
	s, err := NewStore(bkt, StoreOptions{Dir: dir, MaxBytes: maxBytes})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func cachedIDs(s *Store) []ulid.ULID {
	var ids []ulid.ULID
	for _, m := range s.Blocks() {
		ids = append(ids, m.ULID)
	}
	return ids
}

// countSeries counts the `up` series of one endpoint with a sample in [mint, maxt].
func countSeries(t *testing.T, q storage.Queryable, mint, maxt time.Time, ms ...*labels.Matcher) int {
	t.Helper()
	qr, err := q.Querier(mint.UnixMilli(), maxt.UnixMilli())
	require.NoError(t, err)
	defer qr.Close()
	ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"), labels.MustNewMatcher(labels.MatchEqual, "metrics_path", "/metrics"))
	ss := qr.Select(context.Background(), false, nil, ms...)
	n := 0
	for ss.Next() {
		n++
	}
	require.NoError(t, ss.Err())
	return n
}

func TestSyncPicksUpCompleteBlocksOnly(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := fsBucket(t)
	s := newStore(t, bkt, t.TempDir(), 1<<30)
	ctx := context.Background()

	require.NoError(t, s.Sync(ctx))
	assert.Empty(t, s.Blocks(), "empty bucket")

	uploadRaw(t, bkt, blocks[0])
	// An upload in progress: chunks and index, no meta.json yet.
	id1 := filepath.Base(blocks[1])
	require.NoError(t, objstore.UploadFile(ctx, bucket.GoKitLogger(nil), bkt, filepath.Join(blocks[1], "index"), path.Join(id1, "index")))
	require.NoError(t, s.Sync(ctx))
	assert.Equal(t, []ulid.ULID{ulid.MustParse(filepath.Base(blocks[0]))}, cachedIDs(s))
	assert.Equal(t, len(nodes), countSeries(t, s, testFleet.base, testFleet.end()))

	uploadRaw(t, bkt, blocks[1])
	uploadRaw(t, bkt, blocks[2])
	require.NoError(t, s.Sync(ctx))
	assert.Len(t, s.Blocks(), 3)
	// Only the last block has data in its last hour.
	last := testFleet.end().Add(-time.Minute)
	assert.Equal(t, len(nodes), countSeries(t, s, last, last))
}

func TestSyncDropsBlocksDeletedFromBucket(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := fsBucket(t)
	for _, b := range blocks {
		uploadRaw(t, bkt, b)
	}
	cache := t.TempDir()
	s := newStore(t, bkt, cache, 1<<30)
	ctx := context.Background()
	require.NoError(t, s.Sync(ctx))
	require.Len(t, s.Blocks(), 3)

	gone := filepath.Base(blocks[0])
	require.NoError(t, deleteBlock(ctx, bkt, gone))
	require.NoError(t, s.Sync(ctx))
	assert.Len(t, s.Blocks(), 2)
	assert.NoDirExists(t, filepath.Join(cache, gone))
}

func TestCacheSizeBoundEvictsOldest(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := fsBucket(t)
	var sizes []int64
	for _, b := range blocks {
		uploadRaw(t, bkt, b)
		sizes = append(sizes, dirSize(t, b))
	}
	// Room for the two newest blocks, not for the third.
	bound := sizes[1] + sizes[2] + sizes[0]/2
	cache := t.TempDir()
	s := newStore(t, bkt, cache, bound)
	require.NoError(t, s.Sync(context.Background()))

	want := []ulid.ULID{ulid.MustParse(filepath.Base(blocks[1])), ulid.MustParse(filepath.Base(blocks[2]))}
	assert.Equal(t, want, cachedIDs(s))
	assert.LessOrEqual(t, dirSize(t, cache), bound)
	first := testFleet.base.Add(30 * time.Minute)
	assert.Zero(t, countSeries(t, s, first, first), "the oldest block is evicted")

	// The answer says so: a query reaching the evicted hour carries a warning, in the API's
	// "warnings" too, and is counted; one within the cached hours does not.
	last := testFleet.end().Add(-30 * time.Minute)
	counted := s.IncompleteQueries()
	assert.Empty(t, selectWarnings(t, s, last.Add(-time.Hour), last))
	assert.Equal(t, counted, s.IncompleteQueries())
	assert.Len(t, selectWarnings(t, s, first, last), 1)
	api := serve(t, edgetelHandler(t, s, Options{Engine: DefaultEngineOptions, MaxResults: DefaultMaxResults}))
	code, body := get(t, api, "/api/v1/query_range", v("query", "up", "start", unix(first), "end", unix(last), "step", "60"), false)
	assert.Equal(t, http.StatusOK, code)
	var resp struct{ Warnings []string }
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	evictedEnd := blockMeta(t, blocks[0]).MaxTime
	require.Len(t, resp.Warnings, 1)
	assert.Contains(t, resp.Warnings[0], "samples before "+time.UnixMilli(evictedEnd).UTC().Format(time.RFC3339))
	assert.Equal(t, counted+2, s.IncompleteQueries())

	// A smaller bound on the next start evicts the older of the two.
	require.NoError(t, s.Close())
	s2 := newStore(t, bkt, cache, sizes[2]+1)
	require.NoError(t, s2.Sync(context.Background()))
	assert.Equal(t, want[1:], cachedIDs(s2))
	assert.NoDirExists(t, filepath.Join(cache, want[0].String()))
}

// blockMeta reads a block directory's meta.json.
func blockMeta(t *testing.T, dir string) *bucket.Meta {
	t.Helper()
	m, err := bucket.ReadMetaFromDir(dir)
	require.NoError(t, err)
	return m
}

// selectWarnings returns the warnings of a query for every series over [mint, maxt].
func selectWarnings(t *testing.T, q storage.Queryable, mint, maxt time.Time) []error {
	t.Helper()
	qr, err := q.Querier(mint.UnixMilli(), maxt.UnixMilli())
	require.NoError(t, err)
	defer qr.Close()
	ss := qr.Select(context.Background(), false, nil, anyName)
	for ss.Next() {
	}
	require.NoError(t, ss.Err())
	return ss.Warnings().AsErrors()
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return err
	}))
	return n
}

func TestRestartReusesCacheAndDropsDamagedBlocks(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := fsBucket(t)
	for _, b := range blocks {
		uploadRaw(t, bkt, b)
	}
	cache := t.TempDir()
	s, err := NewStore(bkt, StoreOptions{Dir: cache, MaxBytes: 1 << 30})
	require.NoError(t, err)
	require.NoError(t, s.Sync(context.Background()))
	require.NoError(t, s.Close())

	// A damaged cached block and a leftover partial download.
	damaged := filepath.Join(cache, ulid.MustNew(1, nil).String())
	require.NoError(t, os.MkdirAll(damaged, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(damaged, "meta.json"), []byte("{not json"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(cache, stagingDir, "x"), 0o755))

	// Reopened with an unreachable bucket: the cached blocks answer without a sync.
	s2 := newStore(t, fsBucket(t), cache, 1<<30)
	assert.Len(t, s2.Blocks(), 3)
	assert.Equal(t, len(nodes), countSeries(t, s2, testFleet.base, testFleet.end()))
	assert.NoDirExists(t, damaged)
	assert.NoDirExists(t, filepath.Join(cache, stagingDir))
}

func TestSyncSkipsBadMetaAndKeepsTheRest(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := fsBucket(t)
	uploadRaw(t, bkt, blocks[0])
	ctx := context.Background()
	bad := ulid.MustNew(2, nil).String()
	require.NoError(t, bkt.Upload(ctx, path.Join(bad, "meta.json"), strings.NewReader(`{"version": 7}`)))
	notJSON := ulid.MustNew(3, nil).String()
	require.NoError(t, bkt.Upload(ctx, path.Join(notJSON, "meta.json"), strings.NewReader(`garbage`)))
	require.NoError(t, bkt.Upload(ctx, "not-a-block/file", strings.NewReader(`x`)))

	s := newStore(t, bkt, t.TempDir(), 1<<30)
	require.NoError(t, s.Sync(ctx))
	assert.Equal(t, []ulid.ULID{ulid.MustParse(filepath.Base(blocks[0]))}, cachedIDs(s))
}

func TestNewStoreRejectsBadOptions(t *testing.T) {
	_, err := NewStore(fsBucket(t), StoreOptions{Dir: t.TempDir()})
	require.ErrorContains(t, err, "cache max bytes must be positive")

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = NewStore(fsBucket(t), StoreOptions{Dir: filepath.Join(file, "cache"), MaxBytes: 1})
	require.ErrorContains(t, err, "create cache dir")
}

// TestExternalLabels checks that a block shipped with Thanos external labels answers with them,
// as Thanos' store gateway does.
func TestExternalLabels(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := fsBucket(t)
	ctx := context.Background()
	for i, b := range blocks[:2] {
		meta, err := bucket.ReadMetaFromDir(b)
		require.NoError(t, err)
		meta.Thanos.Labels = map[string]string{"cluster": []string{"east", "west"}[i]}
		require.NoError(t, meta.FillFiles(b))
		require.NoError(t, bucket.Upload(ctx, bkt, b, meta, nil))
	}
	s := newStore(t, bkt, t.TempDir(), 1<<30)
	require.NoError(t, s.Sync(ctx))
	from, to := testFleet.base, testFleet.base.Add(2*time.Hour)

	eq := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, n, v) }
	assert.Equal(t, len(nodes), countSeries(t, s, from, to, eq("cluster", "east")))
	assert.Equal(t, 2*len(nodes), countSeries(t, s, from, to, labels.MustNewMatcher(labels.MatchRegexp, "cluster", "east|west")))
	assert.Zero(t, countSeries(t, s, from, to, eq("cluster", "north")))
	assert.Zero(t, countSeries(t, s, from, to, eq("cluster", "")), "every series has a cluster")

	q, err := s.Querier(from.UnixMilli(), to.UnixMilli())
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(ctx, true, nil, eq("__name__", "up"), eq("node", "edge-0"), eq("metrics_path", "/metrics"))
	var got []string
	for ss.Next() {
		got = append(got, ss.At().Labels().Get("cluster"))
	}
	require.NoError(t, ss.Err())
	assert.Equal(t, []string{"east", "west"}, got)

	names, _, err := q.LabelNames(ctx, nil)
	require.NoError(t, err)
	assert.Contains(t, names, "cluster")
	assert.IsIncreasing(t, names)
	vals, _, err := q.LabelValues(ctx, "cluster", nil, eq("node", "edge-3"))
	require.NoError(t, err)
	assert.Equal(t, []string{"east", "west"}, vals)
	vals, _, err = q.LabelValues(ctx, "cluster", nil, eq("node", "no-such-node"))
	require.NoError(t, err)
	assert.Empty(t, vals)
}

// TestQueriesDuringSync runs queries while blocks are added and evicted (run with -race).
func TestQueriesDuringSync(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := fsBucket(t)
	s := newStore(t, bkt, t.TempDir(), 1<<30)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				q, err := s.Querier(testFleet.base.UnixMilli(), testFleet.end().UnixMilli())
				if !assert.NoError(t, err) {
					return
				}
				ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
				for ss.Next() {
					it := ss.At().Iterator(nil)
					for it.Next() != 0 {
					}
					assert.NoError(t, it.Err())
				}
				// The test's end cancels ctx, which may end a Select under way.
				if err := ss.Err(); !errors.Is(err, context.Canceled) {
					assert.NoError(t, err)
				}
				assert.NoError(t, q.Close())
			}
		})
	}
	for round := range 3 {
		for _, b := range blocks {
			uploadRaw(t, bkt, b)
		}
		require.NoError(t, s.Sync(ctx))
		require.Len(t, s.Blocks(), 3, "round %d", round)
		require.NoError(t, deleteBlock(ctx, bkt, filepath.Base(blocks[round])))
		require.NoError(t, s.Sync(ctx))
		require.Len(t, s.Blocks(), 2, "round %d", round)
	}
	cancel()
	wg.Wait()
}

// deleteBlock removes every object of a block, meta.json first as Thanos' compactor does.
func deleteBlock(ctx context.Context, bkt objstore.Bucket, id string) error {
	if err := bkt.Delete(ctx, path.Join(id, bucket.MetaFilename)); err != nil {
		return err
	}
	return bkt.Iter(ctx, id, func(name string) error { return bkt.Delete(ctx, name) }, objstore.WithRecursiveIter())
}

// TestCompactedBlockReplacesItsSources checks that a compactor's output (level 2, sources = the
// first two blocks) is served in place of the blocks it replaces, with the same answers.
func TestCompactedBlockReplacesItsSources(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := fsBucket(t)
	for _, b := range blocks {
		uploadRaw(t, bkt, b)
	}
	ctx := context.Background()
	s := newStore(t, bkt, t.TempDir(), 1<<30)
	require.NoError(t, s.Sync(ctx))
	before := countSamples(t, s)
	require.Positive(t, before)

	comp, err := tsdb.NewLeveledCompactor(ctx, nil, nil, []int64{2 * time.Hour.Milliseconds()}, nil, nil)
	require.NoError(t, err)
	out := t.TempDir()
	ids, err := comp.Compact(out, blocks[:2], nil)
	require.NoError(t, err)
	require.Len(t, ids, 1)
	uploadRaw(t, bkt, filepath.Join(out, ids[0].String()))

	require.NoError(t, s.Sync(ctx))
	want := []ulid.ULID{ids[0], ulid.MustParse(filepath.Base(blocks[2]))}
	assert.Equal(t, want, cachedIDs(s))
	assert.Equal(t, 2, s.Blocks()[0].Compaction.Level)
	assert.Equal(t, before, countSamples(t, s))
}

// countSamples counts every sample of every series.
func countSamples(t *testing.T, q storage.Queryable) int {
	t.Helper()
	qr, err := q.Querier(testFleet.base.UnixMilli(), testFleet.end().UnixMilli())
	require.NoError(t, err)
	defer qr.Close()
	ss := qr.Select(context.Background(), false, nil, anyName)
	n := 0
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			n++
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return n
}

// countingBucket counts meta.json reads.
type countingBucket struct {
	objstore.Bucket
	mu    sync.Mutex
	metas int
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if path.Base(name) == bucket.MetaFilename {
		b.mu.Lock()
		b.metas++
		b.mu.Unlock()
	}
	return b.Bucket.Get(ctx, name)
}

func (b *countingBucket) metaReads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.metas
}

// TestSyncReadsEachMetaOnce checks that a sync reads only the meta.json of blocks it has not
// seen: on S3 every read is a request.
func TestSyncReadsEachMetaOnce(t *testing.T) {
	blocks := fleetBlocks(t)
	bkt := &countingBucket{Bucket: fsBucket(t)}
	for _, b := range blocks[:2] {
		uploadRaw(t, bkt, b)
	}
	ctx := context.Background()
	s := newStore(t, bkt, t.TempDir(), 1<<30)
	require.NoError(t, s.Sync(ctx))
	reads := bkt.metaReads()
	require.NoError(t, s.Sync(ctx))
	assert.Equal(t, reads, bkt.metaReads(), "nothing new: no meta.json read")

	uploadRaw(t, bkt, blocks[2])
	require.NoError(t, s.Sync(ctx))
	assert.Len(t, s.Blocks(), 3)
	assert.LessOrEqual(t, bkt.metaReads(), reads+2, "only the new block's meta.json (and its download)")

	// A deleted and re-uploaded block is read again.
	require.NoError(t, deleteBlock(ctx, bkt, filepath.Base(blocks[0])))
	require.NoError(t, s.Sync(ctx))
	assert.Len(t, s.Blocks(), 2)
	uploadRaw(t, bkt, blocks[0])
	require.NoError(t, s.Sync(ctx))
	assert.Len(t, s.Blocks(), 3)
}
