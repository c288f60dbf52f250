// Package edgefleet is what the signals of one kubeedge receiver share: node discovery, the
// shard's share of its snapshots, the transport to the nodes' kubelets, and a node-health feed.
// The receiver's factory holds one Fleet per component ID; the metrics scrape loops and the log
// followers subscribe to it.
package edgefleet

import (
	"context"
	"errors"
	"sync"

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
}

// Build makes the discovery and transport for the signals' needs.
type Build func(ctx context.Context, needs Needs) (Parts, error)

// Options configure a Fleet.
type Options struct {
	Build Build
	// ShardIndex and ShardCount select this replica's nodes (discovery.Shard).
	ShardIndex, ShardCount int
	Logger                 *zap.Logger
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
	go func() {
		defer close(f.done)
		if err := parts.Discoverer.Run(runCtx, f.publish); err != nil {
			f.opts.Logger.Error("kubeedge discovery stopped", zap.String("mode", f.opts.Mode), zap.Error(err))
		}
	}()
	return nil
}

// Shutdown stops discovery and closes the transport; the fleet may start again.
func (f *Fleet) Shutdown(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cancel == nil {
		return nil
	}
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
	f.deliver.Unlock()
	return nil
}

// Transport is the transport to the nodes; nil unless the fleet is started.
func (f *Fleet) Transport() transport.Transport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.transport
}

// publish hands the shard's nodes of a snapshot to every subscriber.
func (f *Fleet) publish(nodes []discovery.Target) {
	shard := make([]discovery.Target, 0, len(nodes))
	for _, n := range nodes {
		if discovery.Shard(n.Name, f.opts.ShardIndex, f.opts.ShardCount) {
			shard = append(shard, n)
		}
	}
	f.deliver.Lock()
	defer f.deliver.Unlock()
	f.last, f.synced = shard, true
	for _, fn := range f.subs {
		fn(shard)
	}
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
