package kubeedgereceiver

import (
	"context"
	"math"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// defaultBodyEstimate is what a scrape reserves when no body has been read yet.
const defaultBodyEstimate = 1 << 20

// bodyBudget bounds the bytes of scrape bodies held at once across all targets
// (max_body_bytes_in_flight). A start-up, or the end of a long tunnel outage, has every node
// answer at once; max_concurrent_scrapes bounds that by count (256 cadvisor bodies of 1.5 MB),
// not by bytes. A scrape reserves its target's last body size (a target not read yet: the
// largest body read so far) before it fetches and gives it back once the body is converted. It
// never waits while holding a reservation, so the budget cannot deadlock; a body larger than
// reserved is still read (body_size_limit bounds it) and the target's next scrape reserves its
// size.
type bodyBudget struct {
	sem     *semaphore.Weighted
	size    int64
	largest atomic.Int64
	held    atomic.Int64 // bytes of bodies held now (reserved, or read when larger)
	onHeld  func(int64)
}

// budgetSize is max_body_bytes_in_flight, or when 0 a tenth of the Go memory limit (GOMEMLIMIT;
// the chart sets it from the pod's memory limit), or 256 MiB without one.
func budgetSize(configured int64) int64 {
	if configured > 0 {
		return configured
	}
	if limit := debug.SetMemoryLimit(-1); limit < math.MaxInt64 {
		return max(limit/10, 16<<20)
	}
	return 256 << 20
}

func newBodyBudget(size int64, onHeld func(int64)) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(size), size: size, onHeld: onHeld}
}

// bodyHold is one scrape's share of the budget.
type bodyHold struct {
	b              *bodyBudget
	reserved, held int64
}

// reserve waits until last bytes (the target's previous body; 0 when none) fit in the budget.
func (b *bodyBudget) reserve(ctx context.Context, last int64) (*bodyHold, error) {
	n := last
	if n <= 0 {
		n = max(b.largest.Load(), defaultBodyEstimate)
	}
	n = min(n, b.size)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	b.track(n)
	return &bodyHold{b: b, reserved: n, held: n}, nil
}

// read records the size of the body read.
func (h *bodyHold) read(n int) {
	size := int64(n)
	for cur := h.b.largest.Load(); size > cur && !h.b.largest.CompareAndSwap(cur, size); cur = h.b.largest.Load() {
	}
	if size > h.held {
		h.b.track(size - h.held)
		h.held = size
	}
}

// release gives the reservation back once the body is no longer needed.
func (h *bodyHold) release() {
	h.b.sem.Release(h.reserved)
	h.b.track(-h.held)
}

func (b *bodyBudget) track(delta int64) {
	v := b.held.Add(delta)
	if b.onHeld != nil {
		b.onHeld(v)
	}
}
