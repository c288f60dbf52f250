package discovery

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fleet(n int) []Target {
	out := make([]Target, n)
	for i := range out {
		out[i].Name = fmt.Sprintf("edge-%03d", i)
	}
	return out
}

// names is each shard's selection, by shard.
func selectAll(nodes []Target, shards int, a Assignment, held []map[string]bool, now time.Time, delay time.Duration) []map[string]bool {
	out := make([]map[string]bool, shards)
	for s := range shards {
		var h map[string]bool
		if s < len(held) {
			h = held[s]
		}
		sel, _, _ := Handover(nodes, s, a, h, now, delay)
		out[s] = map[string]bool{}
		for _, n := range sel {
			out[s][n.Name] = true
		}
	}
	return out
}

func scrapedBy(sel []map[string]bool, name string) []int {
	var by []int
	for s, m := range sel {
		if m[name] {
			by = append(by, s)
		}
	}
	return by
}

// Through a scale-up 2→3, then 3→4 before shard 2 was Ready, and a scale-down 4→2, every node
// is selected by at least one shard at every step, and by exactly its owner once the new
// owners have been Ready for the delay.
func TestHandoverNeverLeavesANodeUnscraped(t *testing.T) {
	nodes := fleet(300)
	const delay = time.Minute
	t0 := time.Unix(1_000_000, 0)
	ready := func(since time.Time, shards ...int) map[int]time.Time {
		m := map[int]time.Time{}
		for _, s := range shards {
			m[s] = since
		}
		return m
	}
	held := selectAll(nodes, 2, Assignment{Count: 2, ReadySince: ready(t0, 0, 1)}, nil, t0, delay)
	steps := []struct {
		name   string
		shards int
		a      Assignment
		now    time.Time
		exact  bool
	}{
		{"2→3, shard 2 not Ready", 3, Assignment{Count: 3, Since: t0.Add(time.Hour), ReadySince: ready(t0, 0, 1)}, t0.Add(time.Hour), false},
		{"3→4, shards 2 and 3 not Ready", 4, Assignment{Count: 4, Since: t0.Add(61 * time.Minute), ReadySince: ready(t0, 0, 1)}, t0.Add(62 * time.Minute), false},
		{"shard 2 Ready, before the delay", 4, Assignment{Count: 4, Since: t0.Add(61 * time.Minute), ReadySince: map[int]time.Time{0: t0, 1: t0, 2: t0.Add(63 * time.Minute)}}, t0.Add(63*time.Minute + 30*time.Second), false},
		{"shard 3 Ready too, after the delay", 4, Assignment{Count: 4, Since: t0.Add(61 * time.Minute), ReadySince: map[int]time.Time{0: t0, 1: t0, 2: t0.Add(63 * time.Minute), 3: t0.Add(64 * time.Minute)}}, t0.Add(66 * time.Minute), true},
		{"4→2, within the delay", 4, Assignment{Count: 2, Since: t0.Add(2 * time.Hour), ReadySince: ready(t0, 0, 1)}, t0.Add(2*time.Hour + time.Second), false},
		{"4→2, after the delay", 4, Assignment{Count: 2, Since: t0.Add(2 * time.Hour), ReadySince: ready(t0, 0, 1)}, t0.Add(2*time.Hour + delay), true},
	}
	for _, st := range steps {
		sel := selectAll(nodes, st.shards, st.a, held, st.now, delay)
		for _, n := range nodes {
			by := scrapedBy(sel, n.Name)
			require.NotEmpty(t, by, "%s: %s scraped by no shard", st.name, n.Name)
			if st.exact {
				assert.Equal(t, []int{ShardOf(n.Name, st.a.Count)}, by, "%s: %s", st.name, n.Name)
			}
		}
		held = sel
	}
}

// What a shard keeps, and when it may let go: next is the new owner's Ready time plus the delay,
// or zero while the owner has no Ready pod.
func TestHandoverKeepsUntilOwnerReady(t *testing.T) {
	nodes := fleet(200)
	t0 := time.Unix(2_000_000, 0)
	held := map[string]bool{}
	for _, n := range nodes {
		if ShardOf(n.Name, 2) == 0 {
			held[n.Name] = true
		}
	}
	var moved []string
	for name := range held {
		if ShardOf(name, 3) == 2 {
			moved = append(moved, name)
		}
	}
	require.NotEmpty(t, moved)
	a := Assignment{Count: 3, Since: t0, ReadySince: map[int]time.Time{0: t0, 1: t0}}
	_, kept, next := Handover(nodes, 0, a, held, t0.Add(time.Hour), time.Minute)
	assert.ElementsMatch(t, moved, kept)
	assert.True(t, next.IsZero(), "shard 2 has no Ready pod: no time to let go yet")

	a.ReadySince[2] = t0.Add(10 * time.Second)
	_, kept, next = Handover(nodes, 0, a, held, t0.Add(20*time.Second), time.Minute)
	assert.ElementsMatch(t, moved, kept)
	assert.Equal(t, t0.Add(70*time.Second), next)

	sel, kept, _ := Handover(nodes, 0, a, held, t0.Add(70*time.Second), time.Minute)
	assert.Empty(t, kept)
	for _, n := range sel {
		assert.Equal(t, 0, ShardOf(n.Name, 3))
	}

	// A static count: nothing is held beyond ownership.
	sel, kept, _ = Handover(nodes, 0, Assignment{Count: 3}, held, t0, time.Minute)
	assert.Empty(t, kept)
	for _, n := range sel {
		assert.Equal(t, 0, ShardOf(n.Name, 3))
	}
}
