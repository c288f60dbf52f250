package edgenodeprocessor

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sharedcomponent"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/guard"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/nodecache"
)

type edgeNodeProcessor struct {
	cfg    *Config
	logger *zap.Logger
	now    func() time.Time

	nodes  *sharedcomponent.Ref[*nodeSource]
	cache  *nodecache.Cache
	guard  *guard.Guard // nil when the guard is off or for logs and traces
	hasher guard.Hasher
	tel    *telemetry

	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
}

// newProcessorOf builds a processor on its component's shared node source.
func newProcessorOf(set processor.Settings, cfg *Config, sources *nodeSources, withGuard bool) (*edgeNodeProcessor, error) {
	nodes, err := sources.hold(set.ID, cfg)
	if err != nil {
		return nil, err
	}
	p, err := newProcessor(set, cfg, nodes, withGuard)
	if err != nil {
		_ = nodes.Shutdown(context.Background())
	}
	return p, err
}

func newProcessor(set processor.Settings, cfg *Config, nodes *sharedcomponent.Ref[*nodeSource], withGuard bool) (*edgeNodeProcessor, error) {
	p := &edgeNodeProcessor{
		cfg:    cfg,
		logger: set.Logger,
		now:    time.Now,
		nodes:  nodes,
		cache:  nodes.Value().cache,
		hasher: guard.NewHasher(),
	}
	if withGuard && cfg.Guard.Enabled {
		p.guard = guard.New(guard.Limits{
			MaxSeriesPerNode:   cfg.Guard.MaxSeriesPerNode,
			MaxSeriesPerMetric: cfg.Guard.MaxSeriesPerMetric,
			Window:             cfg.Guard.Window,
		})
	}
	tel, err := newTelemetry(set.TelemetrySettings, p.activeSeries, func() int64 { return int64(p.cache.Len()) })
	if err != nil {
		return nil, err
	}
	p.tel = tel
	return p, nil
}

func cacheOptions(cfg *Config) nodecache.Options {
	return nodecache.Options{
		NodeNameAttribute:  cfg.Attributes.NodeName,
		NodeGroupAttribute: cfg.Attributes.NodeGroup,
		NodeGroupLabel:     kube.LabelNodeGroup,
		ReadyAttribute:     cfg.Attributes.Ready,
		Labels:             cfg.Attributes.Labels,
		Annotations:        cfg.Attributes.Annotations,
	}
}

func (p *edgeNodeProcessor) activeSeries() int64 {
	if p.guard == nil {
		return 0
	}
	return int64(p.guard.ActiveSeries())
}

func (p *edgeNodeProcessor) start(ctx context.Context, host component.Host) error {
	if err := p.nodes.Start(ctx, host); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.guard != nil {
		p.stop, p.done = make(chan struct{}), make(chan struct{})
		go p.sweep(p.stop, p.done)
	}
	return nil
}

// sweep frees the state of series and nodes gone quiet; admission itself never needs it.
func (p *edgeNodeProcessor) sweep(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(max(p.cfg.Guard.Window/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.guard.Sweep(p.now())
		}
	}
}

func (p *edgeNodeProcessor) shutdown(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
	return errors.Join(p.nodes.Shutdown(ctx), p.tel.shutdown())
}

// batch is what one call knows about its request: the sender's address is read once, lazily.
type batch struct {
	ctx      context.Context
	ip       string
	ipLoaded bool
	outcomes outcomeCounts
}

func (b *batch) senderIP() string {
	if !b.ipLoaded {
		b.ip, b.ipLoaded = addrIP(client.FromContext(b.ctx).Addr), true
	}
	return b.ip
}

func addrIP(a net.Addr) string {
	switch a := a.(type) {
	case nil:
		return ""
	case *net.TCPAddr:
		return a.IP.String()
	case *net.UDPAddr:
		return a.IP.String()
	case *net.IPAddr:
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// lookup finds the resource's node by the configured sources, in order.
func (p *edgeNodeProcessor) lookup(b *batch, res pcommon.Resource) *nodecache.Entry {
	identified := false
	for _, s := range p.cfg.NodeFrom {
		var key string
		switch s.From {
		case FromResourceAttribute:
			if v, ok := res.Attributes().Get(s.Name); ok && v.Type() == pcommon.ValueTypeStr {
				key = v.Str()
			}
		case FromConnection:
			key = b.senderIP()
		}
		if key == "" {
			continue
		}
		identified = true
		if s.From == FromResourceAttribute {
			if n := p.cache.ByName(key); n != nil {
				b.outcomes.enriched++
				return n
			}
		}
		if n := p.cache.ByIP(key); n != nil {
			b.outcomes.enriched++
			return n
		}
	}
	if identified {
		b.outcomes.unknown++
	} else {
		b.outcomes.noIdentity++
	}
	return nil
}

func (p *edgeNodeProcessor) processMetrics(ctx context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
	b := &batch{ctx: ctx}
	now := p.now().UnixNano()
	dropped := false
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		n := p.lookup(b, rm.Resource())
		if n == nil {
			return false
		}
		guarded := p.guard != nil && p.guardResource(ctx, now, n.Name, rm)
		dropped = dropped || guarded
		n.Apply(rm.Resource().Attributes())
		return guarded && rm.ScopeMetrics().Len() == 0
	})
	p.tel.recordOutcomes(ctx, b.outcomes)
	if dropped && md.ResourceMetrics().Len() == 0 {
		return md, processorhelper.ErrSkipProcessingData
	}
	return md, nil
}

func (p *edgeNodeProcessor) processLogs(ctx context.Context, ld plog.Logs) (plog.Logs, error) {
	b := &batch{ctx: ctx}
	for _, rl := range ld.ResourceLogs().All() {
		if n := p.lookup(b, rl.Resource()); n != nil {
			n.Apply(rl.Resource().Attributes())
		}
	}
	p.tel.recordOutcomes(ctx, b.outcomes)
	return ld, nil
}

func (p *edgeNodeProcessor) processTraces(ctx context.Context, td ptrace.Traces) (ptrace.Traces, error) {
	b := &batch{ctx: ctx}
	for _, rs := range td.ResourceSpans().All() {
		if n := p.lookup(b, rs.Resource()); n != nil {
			n.Apply(rs.Resource().Attributes())
		}
	}
	p.tel.recordOutcomes(ctx, b.outcomes)
	return td, nil
}
