package objstoreexporter

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"

	"github.com/edgetel/edgetel/internal/bucket"
)

// stateFilename is the upload record, named and shaped like Thanos' shipper file so that a
// restart never uploads a block twice.
const stateFilename = "thanos.shipper.json"

type shipState struct {
	Version  int     `json:"version"`
	Uploaded []ulidT `json:"uploaded"`
	// UploadedAt is when each block was uploaded (edgetel's addition, for local_retention).
	UploadedAt map[ulidT]time.Time `json:"uploaded_at,omitempty"`
}

func loadState(path string) (*shipState, error) {
	s := &shipState{Version: 1, UploadedAt: map[ulidT]time.Time{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read upload state: %w", err)
	}
	if err := json.Unmarshal(b, s); err != nil {
		// A corrupt record only costs re-checks: the bucket is asked whether each block exists.
		return &shipState{Version: 1, UploadedAt: map[ulidT]time.Time{}}, nil
	}
	if s.UploadedAt == nil {
		s.UploadedAt = map[ulidT]time.Time{}
	}
	return s, nil
}

type shipper struct {
	cfg    *Config
	bkt    objstore.Bucket
	tel    *telemetry
	logger *slog.Logger
	path   string

	mu    sync.Mutex // guards the fields below: tsdb's reload goroutine reads them through deletable
	state *shipState
	// headSize is the size of the WAL and head chunks, nil until the TSDB is open.
	headSize func() int64
	// needRoom asks the next retention pass to drop the oldest block: an append found the
	// disk full.
	needRoom bool
	// dropped remembers the unuploaded blocks counted as dropped, so a deletion tsdb retries
	// is counted once.
	dropped map[ulidT]bool
	retry   time.Duration
}

func newShipper(cfg *Config, bkt objstore.Bucket, st *shipState, tel *telemetry, logger *slog.Logger) *shipper {
	return &shipper{cfg: cfg, bkt: bkt, state: st, tel: tel, logger: logger, path: filepath.Join(cfg.Directory, stateFilename), dropped: map[ulidT]bool{}}
}

func (s *shipper) setHeadSize(f func() int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.headSize = f
}

// makeRoom makes the next retention pass (within tsdb's block reload interval) drop the oldest
// local block.
func (s *shipper) makeRoom() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.needRoom = true
}

func (s *shipper) uploaded(id ulidT) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uploadedLocked(id)
}

func (s *shipper) uploadedLocked(id ulidT) bool { return slices.Contains(s.state.Uploaded, id) }

// ship uploads, oldest first, every local block not uploaded yet. A block that fails is
// retried at the next attempt and does not hold up the blocks after it (as Thanos' shipper).
func (s *shipper) ship(ctx context.Context, blocks []*tsdb.Block) error {
	// A copy: DB.Blocks returns the TSDB's own slice, which others read meanwhile.
	blocks = slices.Clone(blocks)
	slices.SortFunc(blocks, func(a, b *tsdb.Block) int { return a.Meta().ULID.Compare(b.Meta().ULID) })
	var oldestPending time.Time
	var errs []error
	for _, b := range blocks {
		m := b.Meta()
		if ctx.Err() != nil {
			break
		}
		if s.uploaded(m.ULID) || m.Stats.NumSamples == 0 {
			continue
		}
		if err := s.upload(ctx, b); err != nil {
			if oldestPending.IsZero() {
				oldestPending = ulidTime(m.ULID)
			}
			s.tel.uploadFailures.Add(ctx, 1)
			errs = append(errs, fmt.Errorf("block %s: %w", m.ULID, bucket.Explain(err)))
		}
	}
	s.tel.setLag(oldestPending)
	if len(errs) > 0 {
		s.retry = s.nextRetry()
	} else {
		s.retry = 0
	}
	return errors.Join(append(errs, s.prune(blocks))...)
}

func (s *shipper) upload(ctx context.Context, b *tsdb.Block) error {
	m := &bucket.Meta{BlockMeta: b.Meta(), Thanos: bucket.Thanos{
		Version: bucket.ThanosVersion1, Labels: s.cfg.ExternalLabels, Source: bucket.SourceSidecar,
	}}
	exists, err := s.bkt.Exists(ctx, m.ULID.String()+"/"+bucket.MetaFilename)
	if err != nil {
		return fmt.Errorf("check block %s in bucket: %w", m.ULID, err)
	}
	if !exists { // else a previous run uploaded it but died before recording that
		if err := m.FillFiles(b.Dir()); err != nil {
			return err
		}
		if err := bucket.Upload(ctx, s.bkt, b.Dir(), m, s.logger); err != nil {
			return err
		}
		s.tel.blocksUploaded.Add(ctx, 1)
		s.logger.Info("objstore exporter: uploaded block", "ulid", m.ULID, "minTime", m.MinTime, "maxTime", m.MaxTime)
	}
	return s.record(m.ULID)
}

func (s *shipper) record(id ulidT) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.Uploaded = append(s.state.Uploaded, id)
	s.state.UploadedAt[id] = time.Now()
	return s.saveLocked()
}

// prune forgets blocks that are no longer on local disk, as Thanos' shipper does.
func (s *shipper) prune(blocks []*tsdb.Block) error {
	local := map[ulidT]bool{}
	for _, b := range blocks {
		local[b.Meta().ULID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.state.Uploaded)
	s.state.Uploaded = slices.DeleteFunc(s.state.Uploaded, func(id ulidT) bool { return !local[id] })
	if len(s.state.Uploaded) == n {
		return nil
	}
	for id := range s.state.UploadedAt {
		if !local[id] {
			delete(s.state.UploadedAt, id)
		}
	}
	return s.saveLocked()
}

func (s *shipper) saveLocked() error {
	b, err := json.Marshal(s.state)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write upload state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write upload state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync upload state: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// deletable is tsdb's BlocksToDelete. A block leaves local disk local_retention after its
// upload; blocks tsdb itself marked deletable go too. Three bounds hold whether or not the
// bucket is reachable, oldest blocks first, and count each unuploaded block they drop:
// local_max_age (behind the newest block), local_max_bytes (blocks, WAL and head chunks;
// uploaded blocks go before unuploaded ones) and a full disk (one block per failed append).
func (s *shipper) deletable(blocks []*tsdb.Block, now time.Time) map[ulidT]struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[ulidT]struct{}{}
	var kept []*tsdb.Block
	for _, b := range blocks {
		id := b.Meta().ULID
		if b.Meta().Compaction.Deletable {
			out[id] = struct{}{}
			continue
		}
		if at, ok := s.state.UploadedAt[id]; ok && now.Sub(at) >= s.cfg.LocalRetention {
			out[id] = struct{}{}
			continue
		}
		kept = append(kept, b)
	}
	slices.SortFunc(kept, func(a, b *tsdb.Block) int {
		if c := cmp.Compare(a.Meta().MaxTime, b.Meta().MaxTime); c != 0 {
			return c
		}
		return a.Meta().ULID.Compare(b.Meta().ULID)
	})
	drop := func(b *tsdb.Block, reason string) {
		id := b.Meta().ULID
		out[id] = struct{}{}
		if s.uploadedLocked(id) || s.dropped[id] {
			return
		}
		s.dropped[id] = true
		s.tel.recordLocalDrop(context.Background(), reason, b.Meta().Stats.NumSamples)
		s.logger.Warn("objstore exporter: deleting a local block that was never uploaded",
			"reason", reason, "ulid", id, "minTime", b.Meta().MinTime, "maxTime", b.Meta().MaxTime, "samples", b.Meta().Stats.NumSamples)
	}
	if s.cfg.LocalMaxAge > 0 && len(blocks) > 0 {
		newest := slices.MaxFunc(blocks, func(a, b *tsdb.Block) int { return cmp.Compare(a.Meta().MaxTime, b.Meta().MaxTime) }).Meta().MaxTime
		for _, b := range kept {
			if newest-b.Meta().MaxTime >= s.cfg.LocalMaxAge.Milliseconds() {
				drop(b, dropMaxAge)
			}
		}
	}
	if s.cfg.LocalMaxBytes > 0 {
		total := int64(0)
		if s.headSize != nil {
			total = s.headSize()
		}
		for _, b := range kept {
			if _, ok := out[b.Meta().ULID]; !ok {
				total += b.Size()
			}
		}
		s.dropOldest(kept, out, func() bool { return total > s.cfg.LocalMaxBytes }, func(b *tsdb.Block) {
			drop(b, dropMaxBytes)
			total -= b.Size()
		})
	}
	if s.needRoom {
		s.needRoom = false
		n := 0
		s.dropOldest(kept, out, func() bool { return n == 0 }, func(b *tsdb.Block) { drop(b, dropDiskFull); n++ })
	}
	for id := range s.dropped {
		if !slices.ContainsFunc(blocks, func(b *tsdb.Block) bool { return b.Meta().ULID == id }) {
			delete(s.dropped, id)
		}
	}
	return out
}

// dropOldest drops blocks of kept (oldest first) not yet in out while more is true: uploaded
// blocks first, as they are safe in the bucket.
func (s *shipper) dropOldest(kept []*tsdb.Block, out map[ulidT]struct{}, more func() bool, drop func(*tsdb.Block)) {
	for _, uploaded := range []bool{true, false} {
		for _, b := range kept {
			if !more() {
				return
			}
			if _, ok := out[b.Meta().ULID]; ok || s.uploadedLocked(b.Meta().ULID) != uploaded {
				continue
			}
			drop(b)
		}
	}
}

func (s *shipper) nextRetry() time.Duration {
	r := s.cfg.UploadRetry
	next := r.InitialInterval
	if s.retry > 0 {
		next = time.Duration(float64(s.retry) * max(r.Multiplier, 1))
	}
	return min(next, r.MaxInterval)
}

// backoff is the wait before the next attempt after a failure, with jitter.
func (s *shipper) backoff() time.Duration {
	d := s.retry
	if d <= 0 {
		d = s.cfg.UploadRetry.InitialInterval
	}
	f := s.cfg.UploadRetry.RandomizationFactor
	return time.Duration(float64(d) * (1 - f + 2*f*rand.Float64()))
}

func ulidTime(id ulidT) time.Time { return time.UnixMilli(int64(id.Time())) }
