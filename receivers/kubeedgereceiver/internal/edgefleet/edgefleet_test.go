package edgefleet

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

// manual is a discoverer whose snapshots the test sends.
type manual struct {
	snapshots chan []discovery.Target
	runs      atomic.Int32
}

func (m *manual) Run(ctx context.Context, update func([]discovery.Target)) error {
	m.runs.Add(1)
	defer m.runs.Add(-1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-m.snapshots:
			update(s)
		}
	}
}

type nopTransport struct{ closed *atomic.Int32 }

func (nopTransport) Get(context.Context, discovery.Target, string) (*http.Response, error) {
	return nil, errors.New("not here")
}
func (t nopTransport) Close() { t.closed.Add(1) }

func target(name string) discovery.Target { return discovery.Target{Node: kube.Node{Name: name}} }

func names(ts []discovery.Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// recorder keeps what a subscriber was handed.
type recorder struct {
	mu  sync.Mutex
	got [][]string
}

func (r *recorder) take(ts []discovery.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, names(ts))
}

func (r *recorder) all() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.got...)
}

func newTestFleet(t *testing.T, index, count int) (*Fleet, *manual, *atomic.Int32, *Needs) {
	disc := &manual{snapshots: make(chan []discovery.Target)}
	closed := new(atomic.Int32)
	var built Needs
	f := New(Options{Logger: zap.NewNop(), ShardIndex: index, ShardCount: count,
		Build: func(_ context.Context, n Needs) (Parts, error) {
			built = n
			return Parts{Discoverer: disc, Transport: nopTransport{closed}}, nil
		}})
	return f, disc, closed, &built
}

// The shard filter is applied once, in the fleet: every subscriber gets only the shard's nodes,
// a late subscriber the last snapshot at once, a removed one nothing more.
func TestSubscribersGetTheShard(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f, disc, closed, built := newTestFleet(t, 0, 2)
	f.Need(Needs{Conns: 3})
	f.Need(Needs{Conns: 4, Pods: &kube.PodWatch{Namespace: "apps"}})
	ctx := context.Background()
	require.NoError(t, f.Start(ctx, nil))
	assert.Equal(t, 7, built.Conns, "one pool for every signal's connections")
	assert.Equal(t, "apps", built.Pods.Namespace)
	assert.NotNil(t, f.Transport())

	var all []discovery.Target
	var shard []string
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		all = append(all, target(n))
		if discovery.Shard(n, 0, 2) {
			shard = append(shard, n)
		}
	}
	require.NotEmpty(t, shard)
	require.Less(t, len(shard), len(all))
	first := &recorder{}
	sub := f.Subscribe(first.take)
	disc.snapshots <- all
	require.Eventually(t, func() bool { return len(first.all()) == 1 }, 5*time.Second, time.Millisecond)
	assert.Equal(t, shard, first.all()[0])

	late := &recorder{}
	lateSub := f.Subscribe(late.take)
	assert.Equal(t, [][]string{shard}, late.all(), "the last snapshot at once")
	sub.Remove()
	disc.snapshots <- all[:1]
	require.Eventually(t, func() bool { return len(late.all()) == 2 }, 5*time.Second, time.Millisecond)
	assert.Len(t, first.all(), 1, "nothing after Remove")
	lateSub.Remove()

	require.NoError(t, f.Shutdown(ctx))
	assert.Zero(t, disc.runs.Load(), "discovery stopped")
	assert.Equal(t, int32(1), closed.Load(), "transport closed")
	assert.Nil(t, f.Transport())
	// It may start again (the factory's next holder after a reload).
	require.NoError(t, f.Start(ctx, nil))
	require.NoError(t, f.Shutdown(ctx))
	require.NoError(t, f.Shutdown(ctx))
	assert.Equal(t, int32(2), closed.Load())
}

func TestHealthFeed(t *testing.T) {
	f, _, _, _ := newTestFleet(t, 0, 1)
	var mu sync.Mutex
	heard := map[string]bool{}
	sub := f.OnHealth(func(n discovery.Target, up bool) {
		mu.Lock()
		defer mu.Unlock()
		heard[n.Name] = up
	})
	f.ReportHealth(target("a"), true)
	f.ReportHealth(target("b"), false)
	sub.Remove()
	f.ReportHealth(target("c"), true)
	assert.Equal(t, map[string]bool{"a": true, "b": false}, heard)
}

func TestBuildErrorLeavesItStopped(t *testing.T) {
	boom := errors.New("boom")
	f := New(Options{Logger: zap.NewNop(), Build: func(context.Context, Needs) (Parts, error) { return Parts{}, boom }})
	require.ErrorIs(t, f.Start(context.Background(), nil), boom)
	assert.Nil(t, f.Transport())
	require.NoError(t, f.Shutdown(context.Background()))
}
