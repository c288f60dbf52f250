package remotewriteexporter

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// gate paces all shards of one sender while the remote end fails. Healthy, every shard sends
// at will. After a retryable failure (network error, 429, 5xx) one shard at a time probes,
// after an exponential backoff that grows with every failed probe, so the remote end sees one
// request per backoff interval whatever the number of shards. After a refusal (401, 403, 404
// and the other 4xx that say nothing about the data) sending is held: the data stays in the
// buffer and one probe goes out per max_interval until the remote end takes it again.
type gate struct {
	retry RetryConfig
	now   func() time.Time

	mu      sync.Mutex
	failing bool
	held    bool
	attempt int
	until   time.Time     // no probe before this
	probing bool          // a probe is on the wire
	changed chan struct{} // closed and replaced when the state changes
}

func newGate(r RetryConfig) *gate {
	return &gate{retry: r, now: time.Now, changed: make(chan struct{})}
}

// acquire waits until a request may go out. probe reports that the remote end is failing and
// this request is the one probe: its outcome must be reported with fail or succeed (or
// abandon). ok is false when ctx ends or stop is closed first.
func (g *gate) acquire(ctx context.Context, stop <-chan struct{}) (probe, ok bool) {
	for {
		g.mu.Lock()
		if !g.failing {
			g.mu.Unlock()
			return false, true
		}
		wait := time.Duration(math.MaxInt64) // a probe is on the wire: wait for its outcome
		if !g.probing {
			wait = g.until.Sub(g.now())
			if wait <= 0 {
				g.probing = true
				g.mu.Unlock()
				return true, true
			}
		}
		changed := g.changed
		g.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, false
		case <-stop:
			t.Stop()
			return false, false
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// succeed records an answer from a working remote end (a delivery, or an answer about the data
// itself): every shard may send again.
func (g *gate) succeed(probe bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if probe {
		g.probing = false
	}
	if g.failing {
		g.failing, g.held, g.attempt = false, false, 0
		g.broadcast()
	}
}

// fail records a failed request and returns how long the shards now wait. A failure of a
// request that was not the probe, while the gate already waits, changes nothing: shards that
// were sending in parallel when the remote end went away count as one failure.
func (g *gate) fail(probe, hold bool, retryAfter time.Duration) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	if probe {
		g.probing = false
	} else if g.failing {
		return max(0, g.until.Sub(g.now()))
	}
	wait := g.backoff(g.attempt)
	if hold {
		wait = g.retry.MaxInterval
	}
	if retryAfter > 0 {
		wait = max(wait, min(retryAfter, g.retry.MaxRetryAfter))
	}
	g.failing, g.held = true, hold
	g.attempt++
	g.until = g.now().Add(wait)
	g.broadcast()
	return wait
}

// abandon gives up a probe without an answer (shutdown).
func (g *gate) abandon(probe bool) {
	if !probe {
		return
	}
	g.mu.Lock()
	g.probing = false
	g.broadcast()
	g.mu.Unlock()
}

// isHeld reports whether sending is held after a refusal.
func (g *gate) isHeld() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

func (g *gate) broadcast() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// backoff is exponential with jitter: initial·multiplier^attempt, capped, then spread by
// ±randomization_factor so that agents do not retry in step.
func (g *gate) backoff(attempt int) time.Duration {
	r := g.retry
	d := float64(r.InitialInterval) * math.Pow(r.Multiplier, float64(attempt))
	d = min(d, float64(r.MaxInterval))
	d *= 1 - r.RandomizationFactor + 2*r.RandomizationFactor*rand.Float64()
	return time.Duration(d)
}
