package guard

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

const sec = int64(time.Second)

func admitAll(n *Node, now int64, metric string, ids ...uint64) map[Verdict]int {
	out := map[Verdict]int{}
	for _, id := range ids {
		out[n.Admit(now, metric, id)]++
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var ids []uint64
	for i := from; i < to; i++ {
		ids = append(ids, i)
	}
	return ids
}

func TestPerNodeLimit(t *testing.T) {
	g := New(Limits{MaxSeriesPerNode: 10, Window: time.Minute})
	n := g.Lock("edge-1")
	defer n.Unlock()
	got := admitAll(n, 0, "m", seq(0, 25)...)
	assert.Equal(t, map[Verdict]int{Admitted: 10, RejectedNew: 15}, got)
	// The same series again: the admitted ones stay admitted, the rejected ones are not new.
	got = admitAll(n, sec, "m", seq(0, 25)...)
	assert.Equal(t, map[Verdict]int{Admitted: 10, RejectedAgain: 15}, got)
}

func TestPerMetricLimit(t *testing.T) {
	g := New(Limits{MaxSeriesPerNode: 100, MaxSeriesPerMetric: 5, Window: time.Minute})
	n := g.Lock("edge-1")
	defer n.Unlock()
	assert.Equal(t, map[Verdict]int{Admitted: 5, RejectedNew: 5}, admitAll(n, 0, "a", seq(0, 10)...))
	// Another metric on the same node has its own budget.
	assert.Equal(t, map[Verdict]int{Admitted: 5, RejectedNew: 3}, admitAll(n, 0, "b", seq(100, 108)...))
	assert.True(t, n.Tracked("a"))
	assert.False(t, n.Tracked("c"))
}

func TestNodesAreIndependent(t *testing.T) {
	g := New(Limits{MaxSeriesPerNode: 3, Window: time.Minute})
	a := g.Lock("a")
	assert.Equal(t, map[Verdict]int{Admitted: 3, RejectedNew: 7}, admitAll(a, 0, "m", seq(0, 10)...))
	a.Unlock()
	b := g.Lock("b")
	assert.Equal(t, map[Verdict]int{Admitted: 3}, admitAll(b, 0, "m", seq(0, 3)...))
	b.Unlock()
	assert.Equal(t, 6, g.ActiveSeries())
}

func TestWindowExpiry(t *testing.T) {
	g := New(Limits{MaxSeriesPerNode: 2, Window: time.Minute})
	n := g.Lock("edge-1")
	assert.Equal(t, Admitted, n.Admit(0, "m", 1))
	assert.Equal(t, Admitted, n.Admit(30*sec, "m", 2))
	assert.Equal(t, RejectedNew, n.Admit(59*sec, "m", 3))
	// Series 1 was last seen at 0; at 60s it is out of the window, making room for 3.
	assert.Equal(t, Admitted, n.Admit(60*sec, "m", 3))
	// Series 2 seen at 30s is still active, so 1 (now new again) is over the limit.
	assert.Equal(t, RejectedNew, n.Admit(61*sec, "m", 1))
	// Seeing 2 keeps it alive past its first window.
	assert.Equal(t, Admitted, n.Admit(80*sec, "m", 2))
	assert.Equal(t, RejectedAgain, n.Admit(100*sec, "m", 1))
	n.Unlock()
}

func TestSweepForgetsQuietNodes(t *testing.T) {
	g := New(Limits{MaxSeriesPerNode: 2, Window: time.Minute})
	n := g.Lock("edge-1")
	n.Admit(0, "m", 1)
	n.Admit(0, "m", 2)
	n.Admit(0, "m", 3)
	n.Unlock()
	g.Sweep(time.Unix(0, 30*sec))
	assert.Equal(t, 2, g.ActiveSeries())
	g.Sweep(time.Unix(0, 60*sec))
	assert.Equal(t, 0, g.ActiveSeries())
	assert.True(t, n.Removed())
	// A removed node is replaced by a fresh one.
	n2 := g.Lock("edge-1")
	assert.NotSame(t, n, n2)
	assert.Equal(t, Admitted, n2.Admit(61*sec, "m", 3))
	n2.Unlock()
}

func TestRejectedSetIsBounded(t *testing.T) {
	g := New(Limits{MaxSeriesPerNode: 1, Window: time.Minute})
	n := g.Lock("edge-1")
	defer n.Unlock()
	got := admitAll(n, 0, "m", seq(0, minRejectedTracked+11)...)
	assert.Equal(t, map[Verdict]int{Admitted: 1, RejectedNew: minRejectedTracked, RejectedUntracked: 10}, got)
}

func TestShouldReport(t *testing.T) {
	g := New(Limits{MaxSeriesPerNode: 1, Window: time.Minute})
	n := g.Lock("edge-1")
	defer n.Unlock()
	assert.True(t, n.ShouldReport(sec, time.Minute))
	assert.False(t, n.ShouldReport(30*sec, time.Minute))
	assert.True(t, n.ShouldReport(61*sec, time.Minute))
}

func TestHasherIdentity(t *testing.T) {
	h := NewHasher()
	a := pcommon.NewMap()
	a.PutStr("pod", "p1")
	a.PutInt("port", 80)
	a.PutBool("ok", true)
	b := pcommon.NewMap()
	b.PutBool("ok", true)
	b.PutInt("port", 80)
	b.PutStr("pod", "p1")
	assert.Equal(t, h.Attributes(a), h.Attributes(b), "order must not matter")

	c := pcommon.NewMap()
	c.PutStr("pod", "p1")
	c.PutStr("port", "80")
	c.PutBool("ok", true)
	assert.NotEqual(t, h.Attributes(a), h.Attributes(c), "int 80 and string 80 differ")

	swapped := pcommon.NewMap()
	swapped.PutStr("x", "y")
	plain := pcommon.NewMap()
	plain.PutStr("y", "x")
	assert.NotEqual(t, h.Attributes(swapped), h.Attributes(plain), "keys and values are not interchangeable")

	m := h.Metric(h.Attributes(pcommon.NewMap()), "cpu")
	assert.NotEqual(t, m, h.Metric(h.Attributes(pcommon.NewMap()), "mem"))
	assert.NotEqual(t, h.Series(m, a), h.Series(m, pcommon.NewMap()))

	// Two endpoints of one node: the same scope name, their target labels as scope attributes.
	cadvisor, resource := pcommon.NewInstrumentationScope(), pcommon.NewInstrumentationScope()
	for path, s := range map[string]pcommon.InstrumentationScope{"/metrics/cadvisor": cadvisor, "/metrics/resource": resource} {
		s.SetName("kubeedge")
		s.Attributes().PutStr("metrics_path", path)
	}
	assert.NotEqual(t, h.Scope(1, cadvisor), h.Scope(1, resource), "scope attributes are part of the identity")
	plainScope := pcommon.NewInstrumentationScope()
	plainScope.SetName("kubeedge")
	assert.NotEqual(t, h.Scope(1, cadvisor), h.Scope(1, plainScope))
}

func TestHasherNoCollisionsOnAMillionSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	h := NewHasher()
	mh := h.Metric(0, "container_cpu_usage_seconds_total")
	seen := make(map[uint64]struct{}, 1<<20)
	attrs := pcommon.NewMap()
	for i := range 1 << 20 {
		attrs.PutInt("id", int64(i))
		attrs.PutStr("pod", "p")
		seen[h.Series(mh, attrs)] = struct{}{}
	}
	require.Len(t, seen, 1<<20)
}

func TestHasherDoesNotAllocate(t *testing.T) {
	h := NewHasher()
	attrs := pcommon.NewMap()
	attrs.PutStr("container", "app")
	attrs.PutStr("pod", "app-7d9f")
	attrs.PutDouble("le", 0.5)
	allocs := testing.AllocsPerRun(100, func() { _ = h.Series(h.Metric(1, "m"), attrs) })
	assert.Zero(t, allocs)
}

// The order hint is only a shortcut: with and without passes, every verdict must be the same,
// whatever the order, the subsets and the expiries.
func TestPassesGiveTheSameVerdicts(t *testing.T) {
	limits := Limits{MaxSeriesPerNode: 40, MaxSeriesPerMetric: 25, Window: 10 * time.Second}
	plain, hinted := New(limits).Lock("n"), New(limits).Lock("n")
	rng := rand.New(rand.NewPCG(1, 2))
	last := map[string][]int{}
	for round := range 300 {
		now := int64(round) * sec
		for _, metric := range []string{"a", "b", "c"} {
			// Mostly the same order as last time, like a scrape; now and then a new one.
			ids, ok := last[metric]
			if !ok || round%4 == 3 {
				ids = rng.Perm(60)[:rng.IntN(60)]
				last[metric] = ids
			}
			hinted.StartMetric(metric)
			for _, i := range ids {
				id := uint64(i) | uint64(metric[0])<<32
				require.Equal(t, plain.Admit(now, metric, id), hinted.Admit(now, metric, id), "round %d metric %s id %d", round, metric, i)
			}
			hinted.EndMetric()
		}
	}
}

func TestSeriesCachedEqualsSeries(t *testing.T) {
	h := NewHasher()
	var kc KeyCache
	rng := rand.New(rand.NewPCG(3, 4))
	keys := []string{"pod", "namespace", "container", "le", "a", "b", "c", "d", "e", "f", "g"}
	for range 2000 {
		attrs := pcommon.NewMap()
		for _, i := range rng.Perm(len(keys))[:rng.IntN(len(keys))] {
			attrs.PutStr(keys[i], keys[rng.IntN(len(keys))])
		}
		require.Equal(t, h.Series(7, attrs), h.SeriesCached(7, attrs, &kc))
	}
}

// Batches and the sweeper run at once; the totals stay exact.
func TestConcurrentAdmitAndSweep(t *testing.T) {
	g := New(Limits{MaxSeriesPerNode: 50, Window: time.Hour})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				g.Sweep(time.Unix(0, 0))
			}
		}
	}()
	rejected := make([]int, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				n := g.Lock(fmt.Sprintf("node-%d", w%4))
				if n.Admit(0, "m", uint64(w)<<32|uint64(i)) != Admitted {
					rejected[w]++
				}
				n.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	total := 0
	for _, r := range rejected {
		total += r
	}
	// 4 nodes, each fed 400 distinct series by two workers, keep 50 each.
	assert.Equal(t, 4*400-4*50, total)
	assert.Equal(t, 4*50, g.ActiveSeries())
}
