package discovery

import "time"

// Assignment is the shard layout a collector follows.
type Assignment struct {
	// Count is the number of shards.
	Count int
	// Since is when Count took its value, as this process saw it: nodes that moved then are
	// handed over no sooner than delay after it, so that their new owner, which starts
	// scraping them then, has scraped them before their old owner lets go.
	Since time.Time
	// ReadySince says, for each shard with at least one Ready pod, since when it has had one.
	// Nil means every shard is always ready (a static shard.count, which never changes while a
	// process runs, so nothing is ever handed over).
	ReadySince map[int]time.Time
}

// ready says whether shard has been able to scrape for at least delay at now.
func (a Assignment) ready(shard int, now time.Time, delay time.Duration) (bool, time.Time) {
	if a.ReadySince == nil {
		return true, time.Time{}
	}
	since, ok := a.ReadySince[shard]
	if !ok {
		return false, time.Time{}
	}
	if since.Before(a.Since) {
		since = a.Since
	}
	at := since.Add(delay)
	return !now.Before(at), at
}

// Handover is the shard's selection of a snapshot during and after a reshard: the nodes it owns
// under a.Count, plus the nodes it was scraping (held) whose owner under a.Count has not yet had
// a Ready pod for delay, counted from the count change at the earliest. A node that moves is thus scraped by its old shard until its new shard
// has been scraping for a while, and by both in between; it is never scraped by neither.
//
// It keeps what it holds instead of remembering the previous count: after two count changes in
// quick succession (2→3→4), a node may have moved twice before its first new owner was Ready,
// and only the shard actually scraping it can know to keep it.
//
// kept lists the held nodes selected only because their owner is not ready yet; next is when the
// earliest of them may be let go (zero when it depends on a pod becoming Ready, or none is kept).
func Handover(nodes []Target, shard int, a Assignment, held map[string]bool, now time.Time, delay time.Duration) (selected []Target, kept []string, next time.Time) {
	for _, n := range nodes {
		owner := ShardOf(n.Name, max(a.Count, 1))
		if owner == shard {
			selected = append(selected, n)
			continue
		}
		if !held[n.Name] {
			continue
		}
		ok, at := a.ready(owner, now, delay)
		if ok {
			continue
		}
		selected = append(selected, n)
		kept = append(kept, n.Name)
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return selected, kept, next
}
