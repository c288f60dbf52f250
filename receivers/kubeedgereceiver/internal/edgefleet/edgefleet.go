// Package edgefleet is what the signals of one kubeedge receiver share: node discovery, the
// shard's share of its snapshots, the transport to the nodes' kubelets, and a node-health feed.
// The receiver's factory holds one Fleet per component ID; the metrics scrape loops and the log
// followers subscribe to it.
package edgefleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
)

// Needs is what a signal asks of the fleet before it starts.
type Needs struct {
	// Conns are the idle connections per host the signal keeps busy (max_concurrent_scrapes, or
	// one per open log stream); the transport keeps the sum.
	Conns int
	// Pods, when set, asks discovery mode kubernetes to watch these pods (the logs signal).
	Pods *kube.PodWatch
}

// Parts are what Build makes at Start.
type Parts struct {
	Discoverer discovery.Discoverer
	Transport  transport.Transport
	// Release lets go of what discovery holds (shared informers); nil when nothing.
	Release func()
	// Shards, when set, reports the shard layout as it changes (shard.statefulset); nil: the
	// static Options.ShardCount.
	Shards ShardSource
}

// ShardSource reports the shard layout until its context ends.
type ShardSource interface {
	Run(ctx context.Context, update func(discovery.Assignment)) error
	// Count reads the current shard count directly.
	Count(ctx context.Context) (int, error)
}

// Build makes the discovery and transport for the signals' needs.
type Build func(ctx context.Context, needs Needs) (Parts, error)

// Options configure a Fleet.
type Options struct {
	Build Build
	// ShardIndex and ShardCount select this replica's nodes (discovery.Shard); a ShardSource
	// replaces ShardCount.
	ShardIndex, ShardCount int
	// HandoverDelay is how long a node that moved to another shard stays with this one after
	// its new shard has a Ready pod (discovery.Handover).
	HandoverDelay time.Duration
	// Handover, when set, is told of each node taken (moved here) or released (moved away).
	Handover func(step string, nodes int)
	// LayoutTimeout bounds how long Start waits for a ShardSource's first layout (0: 30s).
	LayoutTimeout time.Duration
	Logger        *zap.Logger
	// Mode names the discovery mode in log messages.
	Mode string
}

// Fleet runs one discovery and one transport for every signal of a receiver. It is a
// component.Component: Start builds and starts them, Shutdown stops them; in between signals
// subscribe to the shard's snapshots and to node health.
type Fleet struct {
	opts Options

	mu        sync.Mutex
	needs     Needs
	transport transport.Transport
	release   func()
	cancel    context.CancelFunc
	done      chan struct{}

	// deliver serialises snapshots to subscribers, so each sees them in order and a removed
	// subscription gets none after Remove returns.
	deliver sync.Mutex
	all     []discovery.Target // the latest snapshot of the whole fleet
	found   bool               // all holds a snapshot
	assign  *discovery.Assignment
	held    map[string]bool // the nodes last handed to subscribers
	recheck *time.Timer     // when a kept node may be released
	shards  ShardSource     // nil: a static count
	laid    chan struct{}   // closed at the ShardSource's first layout
	kept    int             // nodes held only until their new shard takes over
	last    []discovery.Target
	synced  bool // last holds a snapshot
	subs    map[*Subscription]func([]discovery.Target)

	healthMu sync.RWMutex
	health   map[*Subscription]func(discovery.Target, bool)
}

// New returns a fleet that builds its parts at Start.
func New(opts Options) *Fleet {
	return &Fleet{opts: opts, subs: map[*Subscription]func([]discovery.Target){},
		health: map[*Subscription]func(discovery.Target, bool){}}
}

// Need adds a signal's needs. Signals call it when they are created, before the fleet starts.
func (f *Fleet) Need(n Needs) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.needs.Conns += n.Conns
	if n.Pods != nil {
		f.needs.Pods = n.Pods
	}
}

// Start builds the discovery and transport and starts discovering.
func (f *Fleet) Start(ctx context.Context, _ component.Host) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel != nil {
		return errors.New("edgefleet: started twice")
	}
	parts, err := f.opts.Build(ctx, f.needs)
	if err != nil {
		return err
	}
	f.transport, f.release = parts.Transport, parts.Release
	runCtx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.done = make(chan struct{})
	var wg sync.WaitGroup
	f.deliver.Lock()
	f.shards, f.laid = parts.Shards, make(chan struct{})
	if parts.Shards == nil {
		f.assign = &discovery.Assignment{Count: f.opts.ShardCount}
		close(f.laid)
	}
	laid := f.laid
	f.deliver.Unlock()
	if parts.Shards != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := parts.Shards.Run(runCtx, f.setAssignment); err != nil {
				f.opts.Logger.Error("kubeedge shard layout no longer followed", zap.Error(err))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := parts.Discoverer.Run(runCtx, f.publish); err != nil {
			f.opts.Logger.Error("kubeedge discovery stopped", zap.String("mode", f.opts.Mode), zap.Error(err))
		}
	}()
	go func() {
		wg.Wait()
		close(f.done)
	}()
	return f.awaitLayout(ctx, laid)
}

// awaitLayout waits for the shard layout, so that a collector that cannot read its StatefulSet
// (no RBAC, a wrong name) fails to start instead of running Ready with nothing to scrape.
func (f *Fleet) awaitLayout(ctx context.Context, laid chan struct{}) error {
	timeout := f.opts.LayoutTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-laid:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("shard.statefulset: no shard count after %v: can the collector read its StatefulSet and pods (RBAC), and does the StatefulSet exist?", timeout)
	}
	f.stopLocked()
	return err
}

// Shutdown stops discovery and closes the transport; the fleet may start again.
func (f *Fleet) Shutdown(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel == nil {
		return nil
	}
	f.stopLocked()
	return nil
}

// stopLocked stops what Start started. Call it holding mu.
func (f *Fleet) stopLocked() {
	f.cancel()
	<-f.done
	f.cancel, f.done = nil, nil
	f.transport.Close()
	if f.release != nil {
		f.release()
	}
	f.transport, f.release = nil, nil
	f.deliver.Lock()
	f.last, f.synced = nil, false
	f.all, f.found, f.assign, f.held, f.shards, f.kept = nil, false, nil, nil, nil, 0
	if f.recheck != nil {
		f.recheck.Stop()
		f.recheck = nil
	}
	f.deliver.Unlock()
}

// Transport is the transport to the nodes; nil unless the fleet is started.
func (f *Fleet) Transport() transport.Transport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.transport
}

// publish takes a snapshot of the whole fleet.
func (f *Fleet) publish(nodes []discovery.Target) {
	f.deliver.Lock()
	defer f.deliver.Unlock()
	f.all, f.found = nodes, true
	f.reselect()
}

// setAssignment takes a new shard layout.
func (f *Fleet) setAssignment(a discovery.Assignment) {
	f.deliver.Lock()
	defer f.deliver.Unlock()
	if f.assign == nil || f.assign.Count != a.Count {
		f.opts.Logger.Info("kubeedge receiver: shard count", zap.Int("count", a.Count), zap.Int("shard", f.opts.ShardIndex))
	}
	f.assign = &a
	select {
	case <-f.laid:
	default:
		close(f.laid)
	}
	f.reselect()
}

// reselect hands the shard's nodes to every subscriber: those it owns and those it keeps until
// their new shard has taken over (discovery.Handover). Call it holding deliver.
func (f *Fleet) reselect() {
	if !f.found || f.assign == nil {
		return
	}
	now := time.Now()
	shard, kept, next := discovery.Handover(f.all, f.opts.ShardIndex, *f.assign, f.held, now, f.opts.HandoverDelay)
	held := make(map[string]bool, len(shard))
	taken := 0
	for _, n := range shard {
		held[n.Name] = true
		if f.synced && !f.held[n.Name] {
			taken++
		}
	}
	present := make(map[string]bool, len(f.all))
	for _, n := range f.all {
		present[n.Name] = true
	}
	released := 0
	for name := range f.held {
		if !held[name] && present[name] {
			released++
		}
	}
	f.report(taken, released, len(kept))
	if f.recheck != nil {
		f.recheck.Stop()
		f.recheck = nil
	}
	if !next.IsZero() {
		f.recheck = time.AfterFunc(next.Sub(now), func() {
			f.deliver.Lock()
			defer f.deliver.Unlock()
			f.reselect()
		})
	}
	f.held = held
	f.last, f.synced = shard, true
	for _, fn := range f.subs {
		fn(shard)
	}
}

// report logs and counts the nodes a reshard moved to or from this shard. Nodes that simply
// appear or go are not handovers, but a node that appears during a reshard cannot be told
// apart from one that moved, and is counted as taken.
func (f *Fleet) report(taken, released, kept int) {
	changed := kept != f.kept
	f.kept = kept
	if taken == 0 && released == 0 && !changed {
		return
	}
	if f.assign.ReadySince == nil {
		return // a static count: nodes only come and go
	}
	f.opts.Logger.Info("kubeedge receiver: shard handover", zap.Int("shard", f.opts.ShardIndex),
		zap.Int("count", f.assign.Count), zap.Int("taken", taken), zap.Int("released", released),
		zap.Int("kept_until_new_owner_ready", kept))
	if f.opts.Handover != nil {
		f.opts.Handover("taken", taken)
		f.opts.Handover("released", released)
	}
}

// Linger is how long this shard should keep scraping before it stops: when the shard layout
// no longer has this shard (a scale-down removes its pod), the time its nodes' new owners need
// to take over (HandoverDelay from the count change); otherwise 0. The kubelet may stop a
// removed pod before its watch has seen the new count, so unless the watch already says so
// Linger reads the count from the API server.
func (f *Fleet) Linger(ctx context.Context, now time.Time) time.Duration {
	f.deliver.Lock()
	a, src, holds := f.assign, f.shards, len(f.held) > 0
	f.deliver.Unlock()
	if a == nil || src == nil || !holds {
		return 0
	}
	if f.opts.ShardIndex >= a.Count {
		return max(a.Since.Add(f.opts.HandoverDelay).Sub(now), 0)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	count, err := src.Count(ctx)
	if err != nil {
		f.opts.Logger.Warn("kubeedge receiver: cannot tell whether this shard is removed; stopping without a handover", zap.Error(err))
		return 0
	}
	if f.opts.ShardIndex < count {
		return 0 // a restart: the shard stays
	}
	return f.opts.HandoverDelay
}

// Subscription ends with Remove.
type Subscription struct{ remove func() }

// Remove ends the subscription; when it returns, its function is not running and is not called
// again.
func (s *Subscription) Remove() { s.remove() }

// Subscribe calls fn with the shard's nodes (the latest snapshot at once, when there is one)
// until the subscription is removed. Calls come one at a time, in order.
func (f *Fleet) Subscribe(fn func([]discovery.Target)) *Subscription {
	s := &Subscription{}
	s.remove = func() {
		f.deliver.Lock()
		defer f.deliver.Unlock()
		delete(f.subs, s)
	}
	f.deliver.Lock()
	defer f.deliver.Unlock()
	f.subs[s] = fn
	if f.synced {
		fn(f.last)
	}
	return s
}

// OnHealth calls fn with every node round the metrics signal reports.
func (f *Fleet) OnHealth(fn func(n discovery.Target, up bool)) *Subscription {
	s := &Subscription{}
	s.remove = func() {
		f.healthMu.Lock()
		defer f.healthMu.Unlock()
		delete(f.health, s)
	}
	f.healthMu.Lock()
	defer f.healthMu.Unlock()
	f.health[s] = fn
	return s
}

// ReportHealth tells the health subscribers whether any endpoint of a node answered in a round.
func (f *Fleet) ReportHealth(n discovery.Target, up bool) {
	f.healthMu.RLock()
	defer f.healthMu.RUnlock()
	for _, fn := range f.health {
		fn(n, up)
	}
}
