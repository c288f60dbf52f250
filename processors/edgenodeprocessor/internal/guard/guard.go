// Package guard is the cardinality guard of the edgenode processor: per node, a set of the series
// seen within a sliding window, with a limit per node and per metric name per node.
//
// A series is identified by a 64-bit hash (see Hasher); two series whose hashes collide count as
// one. At a million series per node the chance of any collision is about 3e-8.
package guard

import (
	"math"
	"strings"
	"sync"
	"time"

	"github.com/edgetel/edgetel/internal/flatindex"
)

// Limits configures a Guard. A limit of 0 means no limit.
type Limits struct {
	MaxSeriesPerNode   int
	MaxSeriesPerMetric int
	Window             time.Duration
}

// rejectedFactor bounds the set of rejected series a node remembers, as a multiple of the larger
// limit, so the guard's own memory stays bounded while a node explodes.
const rejectedFactor = 10

// minRejectedTracked keeps the rejected set useful when the limits are small.
const minRejectedTracked = 10000

// Verdict is what Admit decides for one data point.
type Verdict uint8

const (
	// Admitted: the series is active (it was, or it now is).
	Admitted Verdict = iota
	// RejectedNew: the series is over a limit and was not rejected before in this window.
	RejectedNew
	// RejectedAgain: the series is over a limit and was already rejected in this window.
	RejectedAgain
	// RejectedUntracked: over a limit, and the rejected set is full, so it cannot say whether this
	// series was rejected before.
	RejectedUntracked
)

// Guard holds the state of every node. It is safe for concurrent use.
type Guard struct {
	limits      Limits
	window      int64
	maxRejected int

	mu    sync.RWMutex
	nodes map[string]*Node
}

// New returns a Guard with the given limits.
func New(l Limits) *Guard {
	maxRejected := rejectedFactor * max(l.MaxSeriesPerNode, l.MaxSeriesPerMetric)
	return &Guard{
		limits:      l,
		window:      int64(l.Window),
		maxRejected: max(maxRejected, minRejectedTracked),
		nodes:       make(map[string]*Node),
	}
}

// Node returns the state of the named node, creating it on first use.
func (g *Guard) Node(name string) *Node {
	g.mu.RLock()
	n := g.nodes[name]
	g.mu.RUnlock()
	if n != nil {
		return n
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n = g.nodes[name]; n == nil {
		n = &Node{
			guard:      g,
			name:       strings.Clone(name),
			metrics:    make(map[string]*Metric),
			rejected:   make(map[uint64]int64),
			nextExpiry: math.MaxInt64,
		}
		g.nodes[n.name] = n
	}
	return n
}

// Lock returns the named node's state, locked; the caller unlocks it.
func (g *Guard) Lock(name string) *Node {
	for {
		n := g.Node(name)
		n.Lock()
		if !n.removed {
			return n
		}
		n.Unlock()
	}
}

// Sweep forgets every series not seen within the window before now, and nodes left with nothing.
func (g *Guard) Sweep(now time.Time) {
	g.mu.RLock()
	nodes := make([]*Node, 0, len(g.nodes))
	for _, n := range g.nodes {
		nodes = append(nodes, n)
	}
	g.mu.RUnlock()

	ts := now.UnixNano()
	for _, n := range nodes {
		n.Lock()
		n.expire(ts)
		empty := len(n.series) == 0 && len(n.rejected) == 0
		n.Unlock()
		if empty {
			g.mu.Lock()
			// Re-check under both locks: a batch may have arrived since.
			n.Lock()
			if len(n.series) == 0 && len(n.rejected) == 0 && g.nodes[n.name] == n {
				delete(g.nodes, n.name)
				n.removed = true
			}
			n.Unlock()
			g.mu.Unlock()
		}
	}
}

// ActiveSeries is the number of active series over all nodes, as of the last admission or sweep.
func (g *Guard) ActiveSeries() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	total := 0
	for _, n := range g.nodes {
		n.Lock()
		total += len(n.series)
		n.Unlock()
	}
	return total
}

// Node is one node's series. Lock it around a batch of Admit calls.
type Node struct {
	sync.Mutex
	guard *Guard
	name  string

	// The active series: index finds an identity's place in series, so a known series costs
	// one lookup and a slice write.
	index      flatindex.Index
	series     []entry
	metrics    map[string]*Metric
	rejected   map[uint64]int64
	nextExpiry int64 // no active or rejected series expires before this
	removed    bool  // swept away; a fresh Node replaces it

	lastReport int64

	// A pass over one metric's points in a batch (StartMetric..EndMetric) remembers the order
	// the series came in; the next batch usually repeats it, and then a known series is found
	// by walking that order instead of a map lookup, which on a large fleet is a cache miss.
	passing    bool
	passMetric *Metric
	passCursor int
	passOrder  []int32
}

type entry struct {
	id     uint64
	seen   int64
	metric *Metric
}

// Key is what the index finds an entry by.
func (e entry) Key() uint64 { return e.id }

// Metric is the per-metric-name state of a node.
type Metric struct {
	Name   string
	active int
	order  []int32 // positions in Node.series, in the order of the last pass
}

// Name is the node's name.
func (n *Node) Name() string { return n.name }

// Removed reports whether Sweep dropped this node; the caller should fetch it again with Guard.Node.
func (n *Node) Removed() bool { return n.removed }

// Admit decides whether the series with the given hash, of the named metric, may pass at now
// (Unix nanoseconds). The caller holds the lock.
func (n *Node) Admit(now int64, metric string, id uint64) Verdict {
	window := n.guard.window
	if n.passing {
		if i, ok := n.hint(id); ok {
			if e := &n.series[i]; now-e.seen < window {
				e.seen = now
				n.passOrder = append(n.passOrder, i)
				return Admitted
			}
		}
	}
	if j, ok := flatindex.Find(&n.index, n.series, id); ok {
		i := int32(j)
		if e := &n.series[i]; now-e.seen < window {
			e.seen = now
			n.record(i, e.metric)
			return Admitted
		}
		n.forget(i)
	}
	m := n.metrics[metric]
	if n.full(m) && now >= n.nextExpiry {
		n.expire(now)
		m = n.metrics[metric]
	}
	if n.full(m) {
		return n.reject(now, id)
	}
	if m == nil {
		m = &Metric{Name: strings.Clone(metric)}
		n.metrics[m.Name] = m
	}
	m.active++
	i := int32(len(n.series))
	n.series = append(n.series, entry{id: id, seen: now, metric: m})
	flatindex.Insert(&n.index, n.series, uint32(i))
	n.record(i, m)
	delete(n.rejected, id)
	n.nextExpiry = min(n.nextExpiry, now+window)
	return Admitted
}

// StartMetric begins a pass over the data points of one metric; call EndMetric after them.
func (n *Node) StartMetric(metric string) {
	n.passing = true
	n.passMetric = n.metrics[metric]
	n.passCursor = 0
	n.passOrder = n.passOrder[:0]
}

// EndMetric ends the pass and keeps its order as the hint for the next one.
func (n *Node) EndMetric() {
	if m := n.passMetric; m != nil {
		m.order, n.passOrder = n.passOrder, m.order
	}
	n.passing = false
	n.passMetric = nil
	n.passOrder = n.passOrder[:0]
}

// hint checks whether the series at the cursor of the last pass's order is id. Positions may be
// stale (series move when others expire); the id check makes a stale hint a plain miss.
func (n *Node) hint(id uint64) (int32, bool) {
	m := n.passMetric
	c := n.passCursor
	n.passCursor++
	if m == nil || c >= len(m.order) {
		return 0, false
	}
	i := m.order[c]
	return i, int(i) < len(n.series) && n.series[i].id == id
}

func (n *Node) record(i int32, m *Metric) {
	if !n.passing {
		return
	}
	if n.passMetric == nil {
		n.passMetric = m
	}
	if n.passMetric == m {
		n.passOrder = append(n.passOrder, i)
	}
}

// ShouldReport says whether a drop report for this node is due, and if so starts a new interval.
// The caller holds the lock.
func (n *Node) ShouldReport(now int64, interval time.Duration) bool {
	if n.lastReport != 0 && now-n.lastReport < int64(interval) {
		return false
	}
	n.lastReport = now
	return true
}

// Tracked reports whether metric has a state on this node, which bounds the metric names the
// caller may use as telemetry attributes to those that had at least one admitted series.
func (n *Node) Tracked(metric string) bool {
	_, ok := n.metrics[metric]
	return ok
}

func (n *Node) full(m *Metric) bool {
	l := n.guard.limits
	if l.MaxSeriesPerNode > 0 && len(n.series) >= l.MaxSeriesPerNode {
		return true
	}
	return m != nil && l.MaxSeriesPerMetric > 0 && m.active >= l.MaxSeriesPerMetric
}

func (n *Node) reject(now int64, id uint64) Verdict {
	if seen, ok := n.rejected[id]; ok {
		n.rejected[id] = now
		if now-seen < n.guard.window {
			return RejectedAgain
		}
		return RejectedNew
	}
	if len(n.rejected) >= n.guard.maxRejected {
		return RejectedUntracked
	}
	n.rejected[id] = now
	n.nextExpiry = min(n.nextExpiry, now+n.guard.window)
	return RejectedNew
}

// forget removes the series at i, moving the last one into its place.
func (n *Node) forget(i int32) {
	e := n.series[i]
	last := len(n.series) - 1
	flatindex.Delete(&n.index, n.series, e.id)
	if int(i) != last {
		flatindex.Move(&n.index, n.series, n.series[last].id, uint32(i))
		n.series[i] = n.series[last]
	}
	n.series[last] = entry{}
	n.series = n.series[:last]
	e.metric.active--
	if e.metric.active == 0 {
		delete(n.metrics, e.metric.Name)
	}
}

// expire drops what was last seen a window or more before now and recomputes nextExpiry.
func (n *Node) expire(now int64) {
	window := n.guard.window
	next := int64(math.MaxInt64)
	// Backwards, so forget's swap only moves series already looked at.
	for i := len(n.series) - 1; i >= 0; i-- {
		if e := n.series[i]; now-e.seen >= window {
			n.forget(int32(i))
			continue
		}
		next = min(next, n.series[i].seen+window)
	}
	if n.index.Oversized() {
		// After an explosion the table would keep its size; a fitted one gives the memory back.
		flatindex.Rebuild(&n.index, n.series)
	}
	hadRejected := len(n.rejected)
	for id, seen := range n.rejected {
		if now-seen >= window {
			delete(n.rejected, id)
			continue
		}
		next = min(next, seen+window)
	}
	if hadRejected > 0 && len(n.rejected) == 0 {
		// Go maps keep their size; after an explosion a fresh one gives the memory back.
		n.rejected = make(map[uint64]int64)
	}
	n.nextExpiry = next
}
