package objstoreexporter

import (
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

	mu    sync.Mutex // guards state: tsdb's reload goroutine reads it through deletable
	state *shipState
	retry time.Duration
}

func newShipper(cfg *Config, bkt objstore.Bucket, st *shipState, tel *telemetry, logger *slog.Logger) *shipper {
	return &shipper{cfg: cfg, bkt: bkt, state: st, tel: tel, logger: logger, path: filepath.Join(cfg.Directory, stateFilename)}
}

func (s *shipper) uploaded(id ulidT) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.state.Uploaded, id)
}

// ship uploads, oldest first, every local block not uploaded yet. It stops at the first failure
// so that the next attempt resumes in order.
func (s *shipper) ship(ctx context.Context, blocks []*tsdb.Block) error {
	slices.SortFunc(blocks, func(a, b *tsdb.Block) int { return a.Meta().ULID.Compare(b.Meta().ULID) })
	var oldestPending time.Time
	defer func() { s.tel.setLag(oldestPending) }()
	for _, b := range blocks {
		m := b.Meta()
		if s.uploaded(m.ULID) || m.Stats.NumSamples == 0 {
			continue
		}
		if err := s.upload(ctx, b); err != nil {
			oldestPending = ulidTime(m.ULID)
			s.tel.uploadFailures.Add(ctx, 1)
			s.retry = s.nextRetry()
			return err
		}
	}
	s.retry = 0
	return s.prune(blocks)
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

// deletable is tsdb's BlocksToDelete: a block leaves local disk local_retention after its upload,
// never before; blocks tsdb itself marked deletable go too.
func (s *shipper) deletable(blocks []*tsdb.Block, now time.Time) map[ulidT]struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[ulidT]struct{}{}
	for _, b := range blocks {
		id := b.Meta().ULID
		if b.Meta().Compaction.Deletable {
			out[id] = struct{}{}
			continue
		}
		if at, ok := s.state.UploadedAt[id]; ok && now.Sub(at) >= s.cfg.LocalRetention {
			out[id] = struct{}{}
		}
	}
	return out
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
