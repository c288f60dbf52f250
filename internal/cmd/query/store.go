// Package query serves Prometheus' HTTP query API over the TSDB blocks in an object-storage
// bucket: it copies complete blocks into a bounded local cache, opens them with Prometheus' tsdb
// and answers with Prometheus' own promql engine and web/api/v1 handlers.
package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/thanos-io/objstore"

	"github.com/edgetel/edgetel/internal/bucket"
)

// stagingDir holds partial downloads under the cache directory; a block is renamed into the
// cache only when it is complete, so a crash never leaves a half block that looks whole.
const stagingDir = ".staging"

// Store is a storage.SampleAndChunkQueryable over the blocks of a bucket, cached locally.
type Store struct {
	bkt      objstore.BucketReader
	dir      string
	maxBytes int64
	logger   *slog.Logger

	syncMtx sync.Mutex // one Sync at a time
	// metas caches the bucket's meta.json files by block: a block is immutable once its
	// meta.json is written, so each is read once, not on every sync. Guarded by syncMtx.
	metas map[ulid.ULID]*bucket.Meta

	mtx     sync.RWMutex
	blocks  []*cachedBlock // sorted by minTime
	missing int64          // see missingBefore; guarded by mtx

	incomplete atomic.Int64 // queries answered with the missing-range warning
}

type cachedBlock struct {
	block  *tsdb.Block
	extLbl map[string]string
	// resolution is the block's downsampling resolution in ms, 0 for raw data.
	resolution int64
	// serve is, for a downsampled block, the ranges no finer cached block holds, the only ones
	// it answers for (guarded by Store.mtx).
	serve [][2]int64
}

// StoreOptions configures a Store.
type StoreOptions struct {
	// Dir is the local cache directory; it is created if missing.
	Dir string
	// MaxBytes bounds the size of the cached blocks; the oldest blocks are evicted first.
	MaxBytes int64
	Logger   *slog.Logger
}

// NewStore opens the blocks already in the cache directory; Sync fetches the rest.
func NewStore(bkt objstore.BucketReader, opts StoreOptions) (*Store, error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("cache max bytes must be positive, got %d", opts.MaxBytes)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{bkt: bkt, dir: opts.Dir, maxBytes: opts.MaxBytes, logger: opts.Logger, metas: map[ulid.ULID]*bucket.Meta{}}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cache dir: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(s.dir, stagingDir)); err != nil {
		return nil, fmt.Errorf("clean staging dir: %w", err)
	}
	if err := s.openCached(); err != nil {
		return nil, err
	}
	return s, nil
}

// openCached opens the block directories a previous run left in the cache.
func (s *Store) openCached() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read cache dir: %w", err)
	}
	for _, e := range entries {
		if _, err := ulid.Parse(e.Name()); err != nil || !e.IsDir() {
			continue
		}
		cb, err := s.open(filepath.Join(s.dir, e.Name()))
		if err != nil {
			// A damaged cached block is only a cache miss: drop it, Sync downloads it again.
			s.logger.Warn("dropping unreadable cached block", "block", e.Name(), "err", err)
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				return fmt.Errorf("remove damaged cached block: %w", err)
			}
			continue
		}
		s.blocks = append(s.blocks, cb)
	}
	sortBlocks(s.blocks)
	return nil
}

func (s *Store) open(dir string) (*cachedBlock, error) {
	meta, err := bucket.ReadMetaFromDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read meta of %s: %w", dir, err)
	}
	b, err := tsdb.OpenBlock(s.logger, dir, aggrPool{chunkenc.NewPool()}, tsdb.DefaultPostingsDecoderFactory)
	if err != nil {
		return nil, fmt.Errorf("open block %s: %w", dir, err)
	}
	return &cachedBlock{block: b, extLbl: meta.Thanos.Labels, resolution: meta.Thanos.Downsample.Resolution}, nil
}

func sortBlocks(bs []*cachedBlock) {
	slices.SortFunc(bs, func(a, b *cachedBlock) int {
		am, bm := a.block.Meta(), b.block.Meta()
		if am.MinTime != bm.MinTime {
			return int(min(max(am.MinTime-bm.MinTime, -1), 1))
		}
		return am.ULID.Compare(bm.ULID)
	})
}

// Run syncs on every interval until ctx ends. Sync errors are logged: the blocks already cached
// stay queryable while the bucket is unreachable. observe, if not nil, sees each outcome.
func (s *Store) Run(ctx context.Context, interval time.Duration, observe func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := s.Sync(ctx)
		if err != nil && ctx.Err() == nil {
			s.logger.Error("bucket sync failed", "err", bucket.Explain(err))
		}
		if observe != nil && ctx.Err() == nil {
			observe(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sync makes the cache hold the newest complete raw blocks of the bucket that fit in the size
// bound, and downsampled blocks for older ranges whose raw blocks are gone: it downloads and
// opens new ones and closes and deletes evicted or vanished ones.
func (s *Store) Sync(ctx context.Context) error {
	s.syncMtx.Lock()
	defer s.syncMtx.Unlock()

	metas, err := s.listBlocks(ctx)
	if err != nil {
		return err
	}
	s.mtx.RLock()
	have := map[ulid.ULID]int64{}
	for _, cb := range s.blocks {
		have[cb.block.Meta().ULID] = cb.block.Size()
	}
	s.mtx.RUnlock()

	want, missing, err := s.selectBlocks(ctx, metas, have)
	if err != nil {
		return err
	}
	serve := serveRanges(want)
	s.mtx.Lock()
	s.missing = missing
	for _, cb := range s.blocks {
		cb.serve = serve[cb.block.Meta().ULID]
	}
	s.mtx.Unlock()

	// New blocks come in before old ones leave, so that a block replaced by a compacted one
	// stays queryable until its replacement is: the cache may exceed its bound by the blocks
	// being downloaded during a sync.
	var errs []error
	for _, m := range want {
		if _, ok := have[m.ULID]; ok {
			continue
		}
		cb, err := s.fetch(ctx, m.ULID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.mtx.Lock()
		cb.serve = serve[m.ULID]
		s.blocks = append(s.blocks, cb)
		sortBlocks(s.blocks)
		s.mtx.Unlock()
		s.logger.Info("block cached", "block", m.ULID, "minTime", m.MinTime, "maxTime", m.MaxTime)
	}
	keep := map[ulid.ULID]bool{}
	for _, m := range want {
		keep[m.ULID] = true
	}
	if err := s.drop(keep); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(filepath.Join(s.dir, stagingDir)); err != nil {
		errs = append(errs, fmt.Errorf("clean staging dir: %w", err))
	}
	return errors.Join(errs...)
}

// listBlocks reads the meta.json of every complete block in the bucket. Directories without
// meta.json are uploads in progress; a block whose meta.json does not decode is skipped with a
// warning so that one bad block does not hide the others.
func (s *Store) listBlocks(ctx context.Context) ([]*bucket.Meta, error) {
	var metas []*bucket.Meta
	seen := map[ulid.ULID]bool{}
	err := s.bkt.Iter(ctx, "", func(name string) error {
		id, err := ulid.Parse(strings.TrimSuffix(name, "/"))
		if err != nil {
			return nil
		}
		seen[id] = true
		if m, ok := s.metas[id]; ok {
			metas = append(metas, m)
			return nil
		}
		m, err := s.readMeta(ctx, id)
		if err != nil || m == nil {
			return err
		}
		s.metas[id] = m
		metas = append(metas, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	for id := range s.metas {
		if !seen[id] {
			delete(s.metas, id)
		}
	}
	return metas, nil
}

// readMeta reads a block's meta.json; nil without error when the block is incomplete or its
// meta.json is unusable.
func (s *Store) readMeta(ctx context.Context, id ulid.ULID) (*bucket.Meta, error) {
	rc, err := s.bkt.Get(ctx, path.Join(id.String(), bucket.MetaFilename))
	if s.bkt.IsObjNotFoundErr(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get meta.json of %s: %w", id, err)
	}
	defer rc.Close()
	m, err := bucket.ReadMeta(rc)
	if err != nil {
		s.logger.Warn("skipping block with unreadable meta.json", "block", id, "err", err)
		return nil, nil
	}
	if m.ULID != id {
		s.logger.Warn("skipping block whose meta.json names another block", "block", id, "meta_ulid", m.ULID)
		return nil, nil
	}
	return m, nil
}

// selectBlocks picks the blocks to cache: first raw-resolution blocks not replaced by a
// compacted block, newest first, then downsampled ones (finest first, newest first) for the
// ranges no block picked before holds, as long as their total size fits the bound. missing is
// where the bucket's ranges the cache does not hold end (see missingBefore).
func (s *Store) selectBlocks(ctx context.Context, metas []*bucket.Meta, cached map[ulid.ULID]int64) (want []*bucket.Meta, missing int64, err error) {
	replaced := map[ulid.ULID]bool{}
	for _, m := range metas {
		for _, src := range m.Compaction.Sources {
			if src != m.ULID {
				replaced[src] = true
			}
		}
	}
	candidates := slices.DeleteFunc(slices.Clone(metas), func(m *bucket.Meta) bool { return replaced[m.ULID] })
	// Ties break on the ULID so that the blocks at the bound do not change from sync to sync.
	slices.SortFunc(candidates, func(a, b *bucket.Meta) int {
		if a.Thanos.Downsample.Resolution != b.Thanos.Downsample.Resolution {
			return int(min(max(a.Thanos.Downsample.Resolution-b.Thanos.Downsample.Resolution, -1), 1))
		}
		if a.MaxTime != b.MaxTime {
			return int(min(max(b.MaxTime-a.MaxTime, -1), 1))
		}
		return b.ULID.Compare(a.ULID)
	})
	var total int64
	for _, m := range candidates {
		if m.Thanos.Downsample.Resolution > 0 &&
			len(uncovered(heldRanges(want)[labelsKey(m.Thanos.Labels)], m.MinTime, m.MaxTime)) == 0 {
			continue
		}
		size, ok := cached[m.ULID]
		if !ok {
			var err error
			if size, err = s.bucketSize(ctx, m); err != nil {
				return nil, 0, err
			}
		}
		if total+size > s.maxBytes {
			s.logger.Warn("cache size bound reached: older blocks are not queryable",
				"block", m.ULID, "cacheMaxBytes", s.maxBytes)
			break
		}
		total += size
		want = append(want, m)
	}
	return want, missingBefore(metas, want, replaced), nil
}

// serveRanges gives each selected downsampled block the parts of its range that no selected
// block of a finer resolution (and the same external labels) holds.
func serveRanges(want []*bucket.Meta) map[ulid.ULID][][2]int64 {
	out := map[ulid.ULID][][2]int64{}
	for _, m := range want {
		if m.Thanos.Downsample.Resolution == 0 {
			continue
		}
		finer := slices.DeleteFunc(slices.Clone(want), func(o *bucket.Meta) bool {
			return o.Thanos.Downsample.Resolution >= m.Thanos.Downsample.Resolution
		})
		out[m.ULID] = uncovered(heldRanges(finer)[labelsKey(m.Thanos.Labels)], m.MinTime, m.MaxTime)
	}
	return out
}

// bucketSize is the size of a block in the bucket: from meta.json's file list when the shipper
// wrote one, otherwise from the objects' attributes.
func (s *Store) bucketSize(ctx context.Context, m *bucket.Meta) (int64, error) {
	var n int64
	for _, f := range m.Thanos.Files {
		n += f.SizeBytes
	}
	if n > 0 {
		return n, nil
	}
	id := m.ULID.String()
	names := []string{path.Join(id, bucket.IndexFilename), path.Join(id, bucket.MetaFilename)}
	err := s.bkt.Iter(ctx, path.Join(id, bucket.ChunksDirname), func(name string) error {
		names = append(names, name)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("list chunks of %s: %w", id, err)
	}
	for _, name := range names {
		a, err := s.bkt.Attributes(ctx, name)
		if err != nil {
			return 0, fmt.Errorf("size of %s: %w", name, err)
		}
		n += a.Size
	}
	return n, nil
}

// drop closes and deletes the cached blocks that are not wanted any more.
func (s *Store) drop(keep map[ulid.ULID]bool) error {
	s.mtx.Lock()
	var kept, gone []*cachedBlock
	for _, cb := range s.blocks {
		if keep[cb.block.Meta().ULID] {
			kept = append(kept, cb)
		} else {
			gone = append(gone, cb)
		}
	}
	s.blocks = kept
	s.mtx.Unlock()

	var errs []error
	for _, cb := range gone {
		// Close waits for the queries still reading the block.
		if err := cb.block.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close evicted block: %w", err))
		}
		if err := os.RemoveAll(cb.block.Dir()); err != nil {
			errs = append(errs, fmt.Errorf("remove evicted block: %w", err))
		}
		s.logger.Info("block evicted from cache", "block", cb.block.Meta().ULID)
	}
	return errors.Join(errs...)
}

// fetch downloads a block into the staging directory, moves it into the cache and opens it.
func (s *Store) fetch(ctx context.Context, id ulid.ULID) (*cachedBlock, error) {
	staging := filepath.Join(s.dir, stagingDir)
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	tmp := filepath.Join(staging, id.String())
	defer os.RemoveAll(tmp)
	if err := bucket.Download(ctx, s.bkt, id, staging, s.logger); err != nil {
		return nil, err
	}
	dst := filepath.Join(s.dir, id.String())
	if err := os.RemoveAll(dst); err != nil {
		return nil, fmt.Errorf("replace cached block: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("move block into cache: %w", err)
	}
	cb, err := s.open(dst)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dst))
	}
	return cb, nil
}

// Blocks returns the metas of the cached blocks, oldest first.
func (s *Store) Blocks() []tsdb.BlockMeta {
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	out := make([]tsdb.BlockMeta, 0, len(s.blocks))
	for _, cb := range s.blocks {
		out = append(out, cb.block.Meta())
	}
	return out
}

// IncompleteQueries counts the queries answered with a warning that the bucket holds samples of
// their range the cache does not.
func (s *Store) IncompleteQueries() int64 { return s.incomplete.Load() }

// CachedBytes is the size of the cached blocks.
func (s *Store) CachedBytes() int64 {
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	var n int64
	for _, cb := range s.blocks {
		n += cb.block.Size()
	}
	return n
}

// Querier implements storage.Queryable over the cached blocks overlapping [mint, maxt].
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	var qs []storage.Querier
	if s.missing > 0 && mint < s.missing {
		s.incomplete.Add(1)
		qs = append(qs, newIncompleteQuerier(s.missing,
			"not in edgetel-query's cache: older than what fits in --cache-max-bytes"))
	}
	for _, cb := range s.blocks {
		if !cb.block.OverlapsClosedInterval(mint, maxt) {
			continue
		}
		q, err := cb.querier(mint, maxt)
		if err != nil {
			for _, q := range qs {
				q.Close()
			}
			return nil, fmt.Errorf("open querier on block %s: %w", cb.block.Meta().ULID, err)
		}
		qs = append(qs, withExternalLabels(q, cb.extLbl))
	}
	if len(qs) == 0 {
		return storage.NoopQuerier(), nil
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// querier reads a raw block as it is and a downsampled one through the aggregates PromQL needs.
func (cb *cachedBlock) querier(mint, maxt int64) (storage.Querier, error) {
	if cb.resolution == 0 {
		return tsdb.NewBlockQuerier(cb.block, mint, maxt)
	}
	return newDownsampledQuerier(cb.block, mint, maxt, cb.serve)
}

// storedChunks reads every cached block's chunks as stored, for deduplication: whole, with the
// blocks' external labels, and not merged across blocks (NewOverlapSplit sorts them out). A
// downsampled block's series are read as Querier reads them and encoded into chunks again.
func (s *Store) storedChunks(mint, maxt int64) (storage.ChunkQuerier, error) {
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	var qs []storage.ChunkQuerier
	if s.missing > 0 && mint < s.missing {
		qs = append(qs, sampleChunks{newIncompleteQuerier(s.missing,
			"not in edgetel-query's cache: older than what fits in --cache-max-bytes")})
	}
	for _, cb := range s.blocks {
		if !cb.block.OverlapsClosedInterval(mint, maxt) {
			continue
		}
		var q storage.ChunkQuerier
		var err error
		if cb.resolution == 0 {
			q, err = tsdb.NewBlockChunkQuerier(cb.block, mint, maxt)
		} else {
			var sq storage.Querier
			sq, err = newDownsampledQuerier(cb.block, mint, maxt, cb.serve)
			q = sampleChunks{sq}
		}
		if err != nil {
			for _, q := range qs {
				q.Close()
			}
			return nil, fmt.Errorf("open chunk querier on block %s: %w", cb.block.Meta().ULID, err)
		}
		qs = append(qs, withExternalLabelsChunks(q, cb.extLbl))
	}
	if len(qs) == 0 {
		return storage.NoopChunkedQuerier(), nil
	}
	return storage.NewMergeChunkQuerier(qs, nil, storage.NewConcatenatingChunkSeriesMerger()), nil
}

// sampleChunks reads a querier's series as chunks of at most 120 samples.
type sampleChunks struct{ storage.Querier }

func (q sampleChunks) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(q.Querier.Select(ctx, sortSeries, hints, ms...))
}

// ChunkQuerier implements storage.ChunkQueryable; web/api/v1 requires it.
func (s *Store) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	s.mtx.RLock()
	defer s.mtx.RUnlock()
	var qs []storage.ChunkQuerier
	for _, cb := range s.blocks {
		if !cb.block.OverlapsClosedInterval(mint, maxt) {
			continue
		}
		if len(cb.extLbl) > 0 {
			return nil, errors.New("chunk queries over blocks with external labels are not supported")
		}
		if cb.resolution > 0 {
			return nil, errors.New("chunk queries over downsampled blocks are not supported")
		}
		q, err := tsdb.NewBlockChunkQuerier(cb.block, mint, maxt)
		if err != nil {
			for _, q := range qs {
				q.Close()
			}
			return nil, fmt.Errorf("open chunk querier on block %s: %w", cb.block.Meta().ULID, err)
		}
		qs = append(qs, q)
	}
	if len(qs) == 0 {
		return storage.NoopChunkedQuerier(), nil
	}
	return storage.NewMergeChunkQuerier(qs, nil, storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)), nil
}

// Close closes every cached block; the files stay for the next start.
func (s *Store) Close() error {
	s.mtx.Lock()
	defer s.mtx.Unlock()
	var errs []error
	for _, cb := range s.blocks {
		errs = append(errs, cb.block.Close())
	}
	s.blocks = nil
	return errors.Join(errs...)
}
