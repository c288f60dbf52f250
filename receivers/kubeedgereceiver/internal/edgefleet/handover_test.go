package edgefleet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

// layouts is a shard source whose assignments the test sends; count is what the API server
// says when asked directly.
type layouts struct {
	assign chan discovery.Assignment
	count  atomic.Int32
}

func (l *layouts) Run(ctx context.Context, update func(discovery.Assignment)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case a := <-l.assign:
			update(a)
		}
	}
}

func (l *layouts) Count(context.Context) (int, error) { return int(l.count.Load()), nil }

// A fleet following a shard source keeps nodes that moved away until their
// new shard has been Ready for the delay, then lets go on its own (no new event needed), counts
// both steps, and on a scale-down that removes it lingers, asking the API server when its watch
// has not seen the change.
func TestFleetHandsOverOnItsOwn(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	disc := &manual{snapshots: make(chan []discovery.Target)}
	src := &layouts{assign: make(chan discovery.Assignment, 1)}
	t0 := time.Now()
	src.assign <- discovery.Assignment{Count: 1, Since: t0, ReadySince: map[int]time.Time{0: t0}}
	var mu sync.Mutex
	steps := map[string]int{}
	const delay = 300 * time.Millisecond
	f := New(Options{Logger: zap.NewNop(), ShardIndex: 0, HandoverDelay: delay,
		Handover: func(step string, n int) { mu.Lock(); steps[step] += n; mu.Unlock() },
		Build: func(context.Context, Needs) (Parts, error) {
			return Parts{Discoverer: disc, Transport: nopTransport{new(atomic.Int32)}, Shards: src}, nil
		}})
	ctx := context.Background()
	require.NoError(t, f.Start(ctx, nil))
	defer func() { require.NoError(t, f.Shutdown(ctx)) }()
	got := &recorder{}
	defer f.Subscribe(got.take).Remove()

	var all []discovery.Target
	owned := map[int][]string{} // shard 0's nodes under 1 and 2 shards
	for i := range 40 {
		n := target(fmt.Sprintf("edge-%02d", i))
		all = append(all, n)
		owned[1] = append(owned[1], n.Name)
		if discovery.ShardOf(n.Name, 2) == 0 {
			owned[2] = append(owned[2], n.Name)
		}
	}
	moved := len(owned[1]) - len(owned[2])
	require.Positive(t, moved)
	disc.snapshots <- all
	require.Eventually(t, func() bool { return len(got.all()) == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, owned[1], got.all()[0])

	// 1 → 2: shard 1 not Ready, then Ready; shard 0 lets go delay after that by itself.
	src.assign <- discovery.Assignment{Count: 2, Since: time.Now(), ReadySince: map[int]time.Time{0: t0}}
	require.Eventually(t, func() bool { return len(got.all()) == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, owned[1], got.all()[1], "kept while shard 1 has no Ready pod")
	ready := time.Now()
	src.assign <- discovery.Assignment{Count: 2, Since: ready, ReadySince: map[int]time.Time{0: t0, 1: ready}}
	require.Eventually(t, func() bool { return len(got.all()) == 4 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, owned[1], got.all()[2], "kept until shard 1 has been Ready for the delay")
	assert.Equal(t, owned[2], got.all()[3])
	assert.GreaterOrEqual(t, time.Since(ready), delay)
	mu.Lock()
	assert.Equal(t, map[string]int{"taken": 0, "released": moved}, steps)
	mu.Unlock()

}

// A shard removed by a scale-down lingers for the handover delay before it stops; asked before
// its watch has seen the change, it learns it from the API server; a restart does not linger.
func TestRemovedShardLingers(t *testing.T) {
	disc := &manual{snapshots: make(chan []discovery.Target)}
	src := &layouts{assign: make(chan discovery.Assignment, 1)}
	t0 := time.Now()
	src.assign <- discovery.Assignment{Count: 2, Since: t0, ReadySince: map[int]time.Time{0: t0, 1: t0}}
	const delay = time.Minute
	f := New(Options{Logger: zap.NewNop(), ShardIndex: 1, HandoverDelay: delay,
		Build: func(context.Context, Needs) (Parts, error) {
			return Parts{Discoverer: disc, Transport: nopTransport{new(atomic.Int32)}, Shards: src}, nil
		}})
	ctx := context.Background()
	require.NoError(t, f.Start(ctx, nil))
	defer func() { require.NoError(t, f.Shutdown(ctx)) }()
	got := &recorder{}
	defer f.Subscribe(got.take).Remove()
	var all []discovery.Target
	for i := range 40 {
		all = append(all, target(fmt.Sprintf("edge-%02d", i)))
	}
	disc.snapshots <- all
	require.Eventually(t, func() bool { return len(got.all()) == 1 }, 5*time.Second, time.Millisecond)
	require.NotEmpty(t, got.all()[0])

	src.count.Store(2)
	assert.Zero(t, f.Linger(ctx, time.Now()), "still in the layout: a restart")
	src.count.Store(1)
	assert.Equal(t, delay, f.Linger(ctx, time.Now()), "removed before the watch saw it: the whole delay")
	change := time.Now()
	src.assign <- discovery.Assignment{Count: 1, Since: change, ReadySince: map[int]time.Time{0: t0}}
	require.Eventually(t, func() bool { return len(got.all()) == 2 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, got.all()[0], got.all()[1], "scrapes on until the delay has passed")
	now := change.Add(20 * time.Second)
	assert.Equal(t, 40*time.Second, f.Linger(ctx, now), "the rest of the delay since the change")
}

// A collector that cannot learn its shard layout fails to start rather than run with nothing to
// scrape; the fleet it began is stopped.
func TestStartFailsWithoutALayout(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	closed := new(atomic.Int32)
	f := New(Options{Logger: zap.NewNop(), LayoutTimeout: 100 * time.Millisecond,
		Build: func(context.Context, Needs) (Parts, error) {
			return Parts{Discoverer: &manual{snapshots: make(chan []discovery.Target)}, Transport: nopTransport{closed},
				Shards: &layouts{assign: make(chan discovery.Assignment)}}, nil
		}})
	err := f.Start(context.Background(), nil)
	require.ErrorContains(t, err, "shard.statefulset: no shard count after 100ms")
	assert.Equal(t, int32(1), closed.Load())
	assert.Nil(t, f.Transport())
	require.NoError(t, f.Shutdown(context.Background()))
}
