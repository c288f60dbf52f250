// Package logs is the kubeedge receiver's logs signal: it follows the container logs of the
// selected pods on the shard's edge nodes, exactly once across restarts (positions in a storage
// extension), and turns discovery snapshots, scrape health and Kubernetes Events into node
// lifecycle records. Its nodes and transport come from the receiver's fleet (edgefleet).
package logs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sharedcomponent"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/edgefleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
)

// maxFlushLines bounds one batch handed to the pipeline.
const maxFlushLines = 8192

// Params are what the receiver gives its logs signal.
type Params struct {
	Settings receiver.Settings
	Config   Config
	Next     consumer.Logs
	// Labels are the node labels put on records as resource attributes (attributes.labels).
	Labels []kube.LabelMapping
	// API and Resync are discovery.kubernetes' API server and resync period: the Pod watch
	// and, with kubernetes_events, the Event watch use them from Registry.
	API      kube.APIConfig
	Resync   time.Duration
	Registry *kube.Registry
	// Fleet is the discovery, transport and health feed shared with the metrics signal.
	Fleet *sharedcomponent.Ref[*edgefleet.Fleet]
	// Classify names why a stream's request failed, as the scrapes name it (timeout, dns, ...).
	Classify func(error) string
}

// Receiver follows the container logs of the selected pods on the shard's edge nodes.
type Receiver struct {
	p    Params
	lc   Config
	set  receiver.Settings
	next consumer.Logs
	sel  labels.Selector
	tel  *logsTelemetry

	sub       *edgefleet.Subscription
	healthSub *edgefleet.Subscription
	transport transport.Transport // the fleet's, from Start
	store     storage.Client      // nil without storage
	slots     chan struct{}       // one per open stream (max_streams)
	// pendingBytes is what every stream holds before the pipeline accepted it
	// (max_pending_bytes_total).
	pendingBytes atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup // followers
	flushW sync.WaitGroup // the flusher
	stopF  context.CancelFunc

	mu        sync.Mutex
	followers map[streamKey]*follower
	draining  map[streamKey]*follower // pod gone: pending lines still to deliver
	limiters  map[string]*rate.Limiter
	stopping  bool

	life *lifecycle // nil unless lifecycle_events
	// events and eventSub feed Kubernetes Events to life (kubernetes_events).
	events   *kube.Events
	eventSub *kube.Subscription
}

// New builds the logs signal and tells the fleet what it needs (a connection per stream, and
// the pods).
func New(p Params) (*Receiver, error) {
	lc := p.Config
	if len(lc.Namespaces) == 0 && !lc.LifecycleEvents {
		return nil, errors.New("logs.namespaces must list the namespaces whose pods are followed (\"*\" for all), " +
			"or logs.lifecycle_events be on: nothing is followed by default")
	}
	sel, err := labels.Parse(lc.LabelSelector)
	if err != nil {
		return nil, fmt.Errorf("logs.label_selector: %w", err)
	}
	tel, err := newLogsTelemetry(p.Settings.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	r := &Receiver{p: p, lc: lc, set: p.Settings, next: p.Next, sel: sel, tel: tel,
		followers: map[streamKey]*follower{}, draining: map[streamKey]*follower{}, limiters: map[string]*rate.Limiter{}}
	if lc.LifecycleEvents {
		r.life = newLifecycle()
	}
	p.Fleet.Value().Need(edgefleet.Needs{Conns: lc.MaxStreams, Pods: lc.podWatch(p.Resync)})
	return r, nil
}

// Fleet is the fleet the signal runs on.
func (r *Receiver) Fleet() *edgefleet.Fleet { return r.p.Fleet.Value() }

// Start opens the position store, starts the fleet (unless the metrics signal did) and follows
// its snapshots and node health.
func (r *Receiver) Start(ctx context.Context, host component.Host) error {
	if r.lc.Storage != nil {
		client, err := storageClient(ctx, host, *r.lc.Storage, r.set.ID)
		if err != nil {
			return err
		}
		r.store = client
	}
	if err := r.watchEvents(); err != nil {
		r.closeStore()
		return err
	}
	if err := r.p.Fleet.Start(ctx, host); err != nil {
		r.stopEvents()
		r.closeStore()
		return err
	}
	f := r.p.Fleet.Value()
	r.transport = f.Transport()
	r.slots = make(chan struct{}, r.lc.MaxStreams)
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	flushCtx, stopF := context.WithCancel(context.Background())
	r.stopF = stopF
	r.flushW.Add(1)
	go func() {
		defer r.flushW.Done()
		r.flushLoop(flushCtx)
	}()
	if r.life != nil {
		r.healthSub = f.OnHealth(r.life.health)
	}
	r.sub = f.Subscribe(func(nodes []discovery.Target) { r.sync(runCtx, nodes) })
	return nil
}

// watchEvents subscribes the lifecycle records to Kubernetes Events (logs.kubernetes_events).
func (r *Receiver) watchEvents() error {
	if !r.lc.KubernetesEvents {
		return nil
	}
	ev, err := r.p.Registry.AcquireEvents(kube.EventWatch{API: r.p.API})
	if err != nil {
		return fmt.Errorf("logs.kubernetes_events: %w", err)
	}
	sub, err := ev.OnEvent(r.life.kubeEvent)
	if err != nil {
		ev.Release()
		return fmt.Errorf("logs.kubernetes_events: %w", err)
	}
	r.events, r.eventSub = ev, sub
	return nil
}

func (r *Receiver) stopEvents() {
	if r.eventSub != nil {
		r.eventSub.Remove()
		r.events.Release()
		r.eventSub, r.events = nil, nil
	}
}

func storageClient(ctx context.Context, host component.Host, id, self component.ID) (storage.Client, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("logs.storage: extension %s is not configured", id)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return nil, fmt.Errorf("logs.storage: extension %s is not a storage extension", id)
	}
	client, err := se.GetClient(ctx, component.KindReceiver, self, "logs")
	if err != nil {
		return nil, fmt.Errorf("logs.storage: %w", err)
	}
	return client, nil
}

// Shutdown stops every stream, hands what was read to the pipeline one last time, lets go of
// the fleet (its last signal stops it) and closes the position store.
func (r *Receiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	if r.sub != nil {
		r.sub.Remove()
		r.sub = nil
	}
	if r.healthSub != nil {
		r.healthSub.Remove()
		r.healthSub = nil
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.stopEvents()
	if r.stopF != nil {
		r.stopF()
		r.flushW.Wait()
		// Lines read and not yet accepted: one more try, so a clean stop does not read them again.
		r.flush(ctx)
	}
	err := r.p.Fleet.Shutdown(ctx)
	r.closeStore()
	return err
}

func (r *Receiver) closeStore() {
	if r.store != nil {
		if err := r.store.Close(context.Background()); err != nil {
			r.set.Logger.Warn("closing the log position store", zap.Error(err))
		}
		r.store = nil
	}
}

// sync makes the followed streams match a snapshot of the shard's nodes: the containers of
// selected pods are followed, and the streams of pods that went away stop.
func (r *Receiver) sync(ctx context.Context, nodes []discovery.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return
	}
	want := map[streamKey]discovery.Target{}
	seenNodes := map[string]bool{}
	for _, n := range nodes {
		for _, p := range n.Pods {
			if !r.lc.selects(r.sel, p) {
				continue
			}
			seenNodes[n.Name] = true
			for _, c := range p.Containers {
				for _, s := range r.streams() {
					want[streamKey{ns: p.Namespace, pod: p.Name, container: c, stream: s}] = n
				}
			}
		}
	}
	if r.life != nil {
		r.life.snapshot(nodes, time.Now())
	}
	for name := range r.limiters {
		if !seenNodes[name] {
			delete(r.limiters, name)
		}
	}
	for key, f := range r.followers {
		if _, ok := want[key]; !ok {
			f.stop()
			delete(r.followers, key)
			r.draining[key] = f
		}
	}
	for key, n := range want {
		if f := r.followers[key]; f != nil {
			f.setNode(n)
			continue
		}
		r.startFollower(ctx, key, n)
	}
	r.tel.streams.Record(context.Background(), int64(len(r.followers)))
}

// streams are the kubelet stream parameters each container is followed with.
func (r *Receiver) streams() []string {
	if r.lc.SplitStreams {
		return []string{streamStdout, streamStderr}
	}
	return []string{""}
}

func (r *Receiver) limiter(node string) *rate.Limiter {
	l := r.limiters[node]
	if l == nil {
		burst := max(r.lc.NodeBytesPerSecond, r.lc.MaxLineSize+lineOverhead)
		l = rate.NewLimiter(rate.Limit(r.lc.NodeBytesPerSecond), burst)
		r.limiters[node] = l
	}
	return l
}

func (r *Receiver) startFollower(ctx context.Context, key streamKey, n discovery.Target) {
	f := newFollower(r, key, n, r.limiter(n.Name))
	if old := r.draining[key]; old != nil {
		// The pod came back before its old stream's lines were delivered: carry on from them.
		f.inherit(old)
	}
	r.followers[key] = f
	fctx, cancel := context.WithCancel(ctx)
	f.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f.run(fctx)
	}()
}

func (r *Receiver) flushLoop(ctx context.Context) {
	t := time.NewTicker(r.lc.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.flush(ctx)
		}
	}
}

// taken is a follower's share of a batch: its first n pending lines.
type taken struct {
	f     *follower
	lines []logLine
}

// flush hands every stream's pending lines to the pipeline, in batches of at most
// maxFlushLines, and persists each stream's position once the pipeline accepted its lines.
// Lines the pipeline refuses stay pending and are offered again at the next flush.
func (r *Receiver) flush(ctx context.Context) {
	r.mu.Lock()
	all := make([]*follower, 0, len(r.followers)+len(r.draining))
	for _, f := range r.followers {
		all = append(all, f)
	}
	for _, f := range r.draining {
		all = append(all, f)
	}
	r.mu.Unlock()
	r.flushLifecycle(ctx)
	for len(all) > 0 {
		var batch []taken
		total := 0
		for len(all) > 0 && total < maxFlushLines {
			f := all[0]
			lines := f.peek(maxFlushLines - total)
			if len(lines) < maxFlushLines-total {
				all = all[1:]
			}
			if len(lines) > 0 {
				batch = append(batch, taken{f, lines})
				total += len(lines)
			}
		}
		if total == 0 {
			break
		}
		if !r.deliver(ctx, batch, total) {
			break
		}
	}
	r.forgetDrained(ctx)
}

// deliver consumes one batch and commits it; false when the pipeline refused it for now.
func (r *Receiver) deliver(ctx context.Context, batch []taken, total int) bool {
	ld := plog.NewLogs()
	now := pcommon.NewTimestampFromTime(time.Now())
	for _, t := range batch {
		t.f.appendTo(ld, t.lines, now)
	}
	err := r.next.ConsumeLogs(ctx, ld)
	if err != nil && !consumererror.IsPermanent(err) {
		r.tel.consumeErrors.Add(context.Background(), 1)
		r.set.Logger.Debug("kubeedge logs: the pipeline refused a batch; it is offered again", zap.Int("lines", total), zap.Error(err))
		return false
	}
	if err != nil {
		r.tel.dropped(reasonConsumerPermanent, total)
		r.set.Logger.Warn("kubeedge logs: the pipeline refused a batch for good; its lines are dropped", zap.Int("lines", total), zap.Error(err))
	} else {
		r.tel.lines.Add(context.Background(), int64(total))
	}
	ops := make([]*storage.Operation, 0, len(batch))
	for _, t := range batch {
		pos := t.f.commit(len(t.lines))
		ops = append(ops, storage.SetOperation(t.f.key.storageKey(), pos.encode()))
	}
	r.persist(ctx, ops)
	return true
}

func (r *Receiver) persist(ctx context.Context, ops []*storage.Operation) {
	if r.store == nil || len(ops) == 0 {
		return
	}
	if err := r.store.Batch(ctx, ops...); err != nil {
		r.tel.positionErrors.Add(context.Background(), 1)
		r.set.Logger.Warn("kubeedge logs: positions not saved; a restart reads those lines again", zap.Error(err))
	}
}

// forgetDrained drops the streams of pods that went away once their lines are delivered, with
// their positions.
func (r *Receiver) forgetDrained(ctx context.Context) {
	r.mu.Lock()
	var ops []*storage.Operation
	for key, f := range r.draining {
		if f.exited() && f.pendingLen() == 0 {
			delete(r.draining, key)
			if r.followers[key] == nil {
				ops = append(ops, storage.DeleteOperation(key.storageKey()))
			}
		}
	}
	r.mu.Unlock()
	r.persist(ctx, ops)
}

// loadPosition reads a stream's saved position; none (or no store) is the start of the log.
func (r *Receiver) loadPosition(ctx context.Context, key streamKey) position {
	if r.store == nil {
		return position{}
	}
	data, err := r.store.Get(ctx, key.storageKey())
	if err != nil {
		r.tel.positionErrors.Add(context.Background(), 1)
		r.set.Logger.Warn("kubeedge logs: position unreadable; following from the start of the log", zap.String("stream", key.String()), zap.Error(err))
		return position{}
	}
	if data == nil {
		return position{}
	}
	pos, err := decodePosition(data)
	if err != nil {
		r.tel.positionErrors.Add(context.Background(), 1)
		r.set.Logger.Warn("kubeedge logs: position invalid; following from the start of the log", zap.String("stream", key.String()), zap.Error(err))
		return position{}
	}
	return pos
}
