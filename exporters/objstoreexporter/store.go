package objstoreexporter

import (
	"math"
	"sync"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// localStore is what the head API reads: the live TSDB and, while a previous run's head is
// being written out as blocks, that replayed TSDB too. Series in both are merged, samples at
// the same timestamp deduplicated.
type localStore struct {
	db *tsdb.DB

	mu     sync.Mutex
	cond   *sync.Cond
	replay *tsdb.DB
	users  int // open queriers on replay
}

func newLocalStore(db *tsdb.DB) *localStore {
	s := &localStore{db: db}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// attach adds a replayed TSDB to what queries read.
func (s *localStore) attach(db *tsdb.DB) {
	s.mu.Lock()
	s.replay = db
	s.mu.Unlock()
}

// detach removes the replayed TSDB and waits until no querier reads it, so that it may close.
func (s *localStore) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replay = nil
	for s.users > 0 {
		s.cond.Wait()
	}
}

func (s *localStore) acquire() *tsdb.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replay != nil {
		s.users++
	}
	return s.replay
}

func (s *localStore) release() {
	s.mu.Lock()
	s.users--
	s.cond.Broadcast()
	s.mu.Unlock()
}

func (s *localStore) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.db.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	rdb := s.acquire()
	if rdb == nil {
		return q, nil
	}
	rq, err := rdb.Querier(mint, maxt)
	if err != nil {
		s.release()
		q.Close()
		return nil, err
	}
	merged := storage.NewMergeQuerier([]storage.Querier{q, rq}, nil, storage.ChainedSeriesMerge)
	return &releasingQuerier{Querier: merged, release: s.release}, nil
}

func (s *localStore) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := s.db.ChunkQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	rdb := s.acquire()
	if rdb == nil {
		return q, nil
	}
	rq, err := rdb.ChunkQuerier(mint, maxt)
	if err != nil {
		s.release()
		q.Close()
		return nil, err
	}
	merged := storage.NewMergeChunkQuerier([]storage.ChunkQuerier{q, rq}, nil,
		storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge))
	return &releasingChunkQuerier{ChunkQuerier: merged, release: s.release}, nil
}

// lowest is the oldest timestamp held, out-of-order heads included (late samples can be older
// than every block), or MaxInt64 when nothing is.
func (s *localStore) lowest() int64 {
	lo := lowestIn(s.db)
	if rdb := s.acquire(); rdb != nil {
		lo = min(lo, lowestIn(rdb))
		s.release()
	}
	return lo
}

func lowestIn(db *tsdb.DB) int64 {
	lo, err := db.StartTime()
	if err != nil {
		lo = math.MaxInt64
	}
	return min(lo, db.Head().MinOOOTime())
}

type releasingQuerier struct {
	storage.Querier
	once    sync.Once
	release func()
}

func (q *releasingQuerier) Close() error {
	err := q.Querier.Close()
	q.once.Do(q.release)
	return err
}

type releasingChunkQuerier struct {
	storage.ChunkQuerier
	once    sync.Once
	release func()
}

func (q *releasingChunkQuerier) Close() error {
	err := q.ChunkQuerier.Close()
	q.once.Do(q.release)
	return err
}
