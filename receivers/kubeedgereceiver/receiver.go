package kubeedgereceiver

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/relabel"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sharedcomponent"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/edgefleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
)

type kubeedgeReceiver struct {
	cfg     *Config
	set     receiver.Settings
	next    consumer.Metrics
	relabel []*relabel.Config
	paths   []string
	// labels is attributes.labels with the deprecated node_labels merged in.
	labels []kube.LabelMapping

	// fleet is the discovery, transport and health feed this receiver's signals share; build
	// makes its parts (nil when the factory built the fleet).
	fleet *sharedcomponent.Ref[*edgefleet.Fleet]
	build *fleetBuilder
	sub   *edgefleet.Subscription

	transport transport.Transport // the fleet's, from Start
	sem       chan struct{}       // fetches in flight (max_concurrent_scrapes)
	budget    *bodyBudget         // body bytes in flight (max_body_bytes_in_flight)
	// converting bounds the conversions in flight to GOMAXPROCS: see fetchAndConvert.
	converting chan struct{}
	bodies     sync.Pool // of *bytes.Buffer
	tel        *telemetry
	refusals   *refusalLog

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	loops    map[string]*nodeLoop
	stopping bool
}

// reportHealth tells the fleet's health feed whether any endpoint of a node answered in a round
// (the logs signal's tunnel lifecycle records).
func (r *kubeedgeReceiver) reportHealth(n discovery.Target, up bool) {
	r.fleet.Value().ReportHealth(n, up)
}

// newReceiver builds a metrics receiver with a fleet of its own (tests; the factory shares one
// fleet between the signals of a receiver ID).
func newReceiver(set receiver.Settings, cfg *Config, next consumer.Metrics, reg *kube.Registry) (*kubeedgeReceiver, error) {
	f, build := newFleet(set, cfg, reg)
	ref, err := ownFleet(f)
	if err != nil {
		return nil, err
	}
	r, err := newMetricsReceiver(set, cfg, next, ref)
	if err != nil {
		return nil, err
	}
	r.build = build
	return r, nil
}

func newMetricsReceiver(set receiver.Settings, cfg *Config, next consumer.Metrics, fleet *sharedcomponent.Ref[*edgefleet.Fleet]) (*kubeedgeReceiver, error) {
	rc, err := cfg.relabelConfigs()
	if err != nil {
		return nil, err
	}
	tel, err := newTelemetry(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	r := &kubeedgeReceiver{
		cfg:      cfg,
		set:      set,
		next:     next,
		relabel:  rc,
		paths:    cfg.Endpoints.paths(),
		labels:   cfg.labelMappings(),
		fleet:    fleet,
		tel:      tel,
		refusals: &refusalLog{log: set.Logger, every: refusalLogEvery},
		loops:    map[string]*nodeLoop{},
	}
	r.bodies.New = func() any { return new(bytes.Buffer) }
	if cfg.NodeLabels != nil {
		set.Logger.Warn("kubeedge receiver: node_labels is deprecated and will be removed in the next release; "+
			"it is merged into attributes.labels, a list of {key: <node label>, attribute: <series label>}",
			zap.Any("attributes.labels", r.labels))
	}
	if on := cfg.Attributes.TargetLabelsOn; on != "" {
		set.Logger.Warn("kubeedge receiver: attributes.target_labels_on is deprecated and ignored, and will be removed in the next release; "+
			"the target labels travel on each endpoint's resource (see the receiver's README)", zap.String("attributes.target_labels_on", on))
	}
	fleet.Value().Need(edgefleet.Needs{Conns: cfg.MaxConcurrentScrapes})
	return r, nil
}

// Start starts the fleet (unless the logs signal did) and follows its snapshots: scraping
// follows discovery.
func (r *kubeedgeReceiver) Start(ctx context.Context, host component.Host) error {
	if err := r.fleet.Start(ctx, host); err != nil {
		return err
	}
	f := r.fleet.Value()
	r.transport = f.Transport()
	r.sem = make(chan struct{}, r.cfg.MaxConcurrentScrapes)
	size := budgetSize(r.cfg.MaxBodyBytesInFlight)
	r.budget = newBodyBudget(size, r.tel.setBodyBytes)
	r.set.Logger.Info("kubeedge receiver: response bodies in memory bounded", zap.Int64("max_body_bytes_in_flight", size))
	r.converting = make(chan struct{}, runtime.GOMAXPROCS(0))
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.sub = f.Subscribe(func(nodes []discovery.Target) { r.sync(runCtx, nodes) })
	return nil
}

// Shutdown stops every scrape loop and waits for them, then lets go of the fleet (its last
// signal stops it). Series are not marked stale on shutdown: the collector stopping is not the
// fleet going away.
func (r *kubeedgeReceiver) Shutdown(ctx context.Context) error {
	r.linger(ctx)
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	if r.sub != nil {
		r.sub.Remove()
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	return r.fleet.Shutdown(ctx)
}

// linger keeps scraping, when a scale-down removes this shard, until the nodes' new shards
// have taken them over (edgefleet.Fleet.Linger), or ctx ends.
func (r *kubeedgeReceiver) linger(ctx context.Context) {
	if r.sub == nil {
		return
	}
	d := r.fleet.Value().Linger(ctx, time.Now())
	if d <= 0 {
		return
	}
	r.set.Logger.Info("kubeedge receiver: this shard is removed; scraping on until its nodes' new shards have taken over",
		zap.Duration("for", d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// sync makes the running scrape loops match a snapshot of the shard's nodes: new nodes get a
// loop, vanished ones end theirs (with staleness markers), and changed ones are updated.
func (r *kubeedgeReceiver) sync(ctx context.Context, nodes []discovery.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return
	}
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		seen[n.Name] = true
		loop := r.loops[n.Name]
		if loop != nil && loop.sameSeries(n) {
			loop.update(n)
			continue
		}
		if loop != nil {
			// The series labels taken from the node changed: the old series end.
			loop.stop(true)
		}
		r.startLoop(ctx, n)
	}
	for name, loop := range r.loops {
		if !seen[name] {
			loop.stop(true)
			delete(r.loops, name)
		}
	}
	r.tel.setTargets(len(r.loops))
}

func (r *kubeedgeReceiver) startLoop(ctx context.Context, n discovery.Target) {
	loop := newNodeLoop(r, n)
	r.loops[n.Name] = loop
	loopCtx, cancel := context.WithCancel(ctx)
	loop.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		loop.run(loopCtx)
	}()
}
