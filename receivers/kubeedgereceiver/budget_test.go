package kubeedgereceiver

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBodyBudgetBoundsReservations(t *testing.T) {
	var held atomic.Int64
	b := newBodyBudget(10<<20, func(n int64) { held.Store(n) })
	ctx := context.Background()

	first, err := b.reserve(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(defaultBodyEstimate), first.reserved, "nothing read yet: the default estimate")
	first.read(6 << 20)
	assert.Equal(t, int64(6<<20), held.Load(), "a body larger than reserved counts as read")

	second, err := b.reserve(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, int64(6<<20), second.reserved, "a target never read reserves the largest body read")

	blocked := make(chan *bodyHold)
	go func() {
		h, _ := b.reserve(ctx, 5<<20) // 1 + 6 + 5 > 10 MiB: waits
		blocked <- h
	}()
	select {
	case <-blocked:
		t.Fatal("a reservation beyond the budget did not wait")
	case <-time.After(100 * time.Millisecond):
	}
	second.release()
	third := <-blocked
	require.NotNil(t, third)
	first.release()
	third.release()
	assert.Zero(t, held.Load(), "everything given back")

	huge, err := b.reserve(ctx, 1<<40)
	require.NoError(t, err, "a body larger than the whole budget waits for all of it, not forever")
	assert.Equal(t, int64(10<<20), huge.reserved)
	huge.release()

	cctx, cancel := context.WithCancel(ctx)
	all, err := b.reserve(ctx, 10<<20)
	require.NoError(t, err)
	cancel()
	_, err = b.reserve(cctx, 1)
	require.ErrorIs(t, err, context.Canceled, "a stopping scrape does not wait for the budget")
	all.release()
}

func TestBudgetSizeFollowsGOMEMLIMIT(t *testing.T) {
	assert.Equal(t, int64(5), budgetSize(5))
	prev := setMemoryLimit(t, 2<<30)
	defer setMemoryLimit(t, prev)
	assert.Equal(t, int64(2<<30)/10, budgetSize(0))
}

// A budget smaller than one body lets one scrape through at a time, and every node is still
// scraped whole.
func TestTinyBodyBudgetScrapesEveryNode(t *testing.T) {
	s, fleetFile := startSim(t, 8)
	cfg := simConfig(s, fleetFile, 5*time.Second) // the nodes' first rounds within 5 s
	cfg.MaxBodyBytesInFlight = 1
	r := scrapeEveryNodeIntact(t, s, cfg, 2*time.Minute)
	assert.Equal(t, int64(1), r.budget.size)
}

func setMemoryLimit(t *testing.T, n int64) int64 {
	t.Helper()
	return debug.SetMemoryLimit(n)
}
