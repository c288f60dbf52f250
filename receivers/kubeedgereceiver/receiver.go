package kubeedgereceiver

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/relabel"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"
	"k8s.io/client-go/rest"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
)

type kubeedgeReceiver struct {
	unlink  func() // leaves the factory's links (set by the factory)
	cfg     *Config
	set     receiver.Settings
	next    consumer.Metrics
	relabel []*relabel.Config
	paths   []string
	// labels is attributes.labels with the deprecated node_labels merged in.
	labels []kube.LabelMapping

	// registry shares the Node informer with other components; restConfig loads the API
	// server's config for transport apiserver and is replaced in tests, where there is no cluster.
	registry   *kube.Registry
	restConfig func(kube.APIConfig) (*rest.Config, error)
	nodes      *kube.Nodes // held from Start to Shutdown with discovery.mode kubernetes
	pods       *kube.Pods  // held too by the logs signal

	transport transport.Transport
	sem       chan struct{} // fetches in flight (max_concurrent_scrapes)
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

	// health, when set, hears every round whether any endpoint of a node answered (the logs
	// signal's tunnel lifecycle records).
	health atomic.Pointer[healthFunc]
}

// healthFunc hears a node's round: whether any of its endpoints answered.
type healthFunc func(n discovery.Target, up bool)

func (r *kubeedgeReceiver) reportHealth(n discovery.Target, up bool) {
	if h := r.health.Load(); h != nil {
		(*h)(n, up)
	}
}

func newReceiver(set receiver.Settings, cfg *Config, next consumer.Metrics, reg *kube.Registry) (*kubeedgeReceiver, error) {
	rc, err := cfg.relabelConfigs()
	if err != nil {
		return nil, err
	}
	tel, err := newTelemetry(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	r := &kubeedgeReceiver{
		cfg:        cfg,
		set:        set,
		next:       next,
		relabel:    rc,
		paths:      cfg.Endpoints.paths(),
		labels:     cfg.labelMappings(),
		registry:   reg,
		restConfig: kube.RestConfig,
		tel:        tel,
		refusals:   &refusalLog{log: set.Logger, every: refusalLogEvery},
		loops:      map[string]*nodeLoop{},
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
	return r, nil
}

// Start builds the transport and discovery and starts discovering; scraping follows discovery.
func (r *kubeedgeReceiver) Start(ctx context.Context, _ component.Host) error {
	t, err := r.newTransport(ctx)
	if err != nil {
		return err
	}
	disc, err := r.newDiscoverer()
	if err != nil {
		t.Close()
		return err
	}
	r.transport = t
	r.sem = make(chan struct{}, r.cfg.MaxConcurrentScrapes)
	r.converting = make(chan struct{}, runtime.GOMAXPROCS(0))
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := disc.Run(runCtx, func(nodes []discovery.Target) { r.sync(runCtx, nodes) }); err != nil {
			r.set.Logger.Error("kubeedge discovery stopped", zap.String("mode", r.cfg.Discovery.Mode), zap.Error(err))
		}
	}()
	return nil
}

// Shutdown stops discovery and every scrape loop and waits for them. Series are not marked stale
// on shutdown: the collector stopping is not the fleet going away.
func (r *kubeedgeReceiver) Shutdown(context.Context) error {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	if r.transport != nil {
		r.transport.Close()
	}
	if r.nodes != nil {
		r.nodes.Release()
		r.nodes = nil
	}
	if r.unlink != nil {
		r.unlink()
	}
	return nil
}

func (r *kubeedgeReceiver) newTransport(ctx context.Context) (transport.Transport, error) {
	return r.newTransportConns(ctx, r.cfg.MaxConcurrentScrapes)
}

// newTransportConns builds the configured transport keeping up to maxConns idle connections per
// host (the logs signal keeps one per open stream).
func (r *kubeedgeReceiver) newTransportConns(ctx context.Context, maxConns int) (transport.Transport, error) {
	tc := r.cfg.Transport
	switch tc.Mode {
	case TransportCloudcore:
		tlsCfg, err := tc.Cloudcore.TLS.LoadTLSConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("transport.cloudcore.tls: %w", err)
		}
		cc, err := transport.NewCloudcore(tc.Cloudcore.Endpoints, tlsCfg, maxConns, r.cfg.ScrapeTimeout)
		if err != nil || tc.Cloudcore.Service.Name == "" {
			return cc, err
		}
		return r.followService(ctx, cc, tc.Cloudcore.Service)
	case TransportAPIServer:
		rc, err := r.restConfig(tc.APIServer.APIConfig)
		if err != nil {
			return nil, fmt.Errorf("transport.apiserver: %w", err)
		}
		rc = rest.CopyConfig(rc)
		rc.QPS, rc.Burst = -1, 0 // no client-side rate limit: max_concurrent_scrapes bounds the load
		return transport.NewAPIServer(rc, r.cfg.ScrapeTimeout)
	case TransportDirect:
		tlsCfg, err := tc.Direct.TLS.LoadTLSConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("transport.direct.tls: %w", err)
		}
		return transport.NewDirect(tc.Direct.Scheme, tc.Direct.Endpoint, tlsCfg, maxConns, r.cfg.ScrapeTimeout), nil
	}
	return nil, fmt.Errorf("transport.mode %q unknown", tc.Mode)
}

func (r *kubeedgeReceiver) newDiscoverer() (discovery.Discoverer, error) {
	return r.newDiscovererPods(nil)
}

// newDiscovererPods is newDiscoverer whose kubernetes mode also watches pods (the logs signal);
// it holds the Pod informer until release.
func (r *kubeedgeReceiver) newDiscovererPods(pods *kube.PodWatch) (discovery.Discoverer, error) {
	dc := r.cfg.Discovery
	switch dc.Mode {
	case DiscoveryStatic:
		nodes := make([]kube.Node, len(dc.Static.Nodes))
		for i, n := range dc.Static.Nodes {
			nodes[i] = n.node()
		}
		return discovery.Static{Nodes: nodes}, nil
	case DiscoveryFile:
		return discovery.File{Path: dc.File.Path, Interval: dc.File.RefreshInterval, Logger: r.set.Logger}, nil
	case DiscoveryKubernetes:
		nodes, err := r.registry.AcquireNodes(kube.NodeWatch{API: dc.Kubernetes.APIConfig,
			Selector: dc.Kubernetes.LabelSelector, Resync: dc.Kubernetes.ResyncPeriod})
		if err != nil {
			return nil, fmt.Errorf("discovery.kubernetes: %w", err)
		}
		r.nodes = nodes
		d := discovery.Kubernetes{Nodes: nodes, Settle: 100 * time.Millisecond}
		if pods != nil {
			pods.API = dc.Kubernetes.APIConfig
			p, err := r.registry.AcquirePods(*pods)
			if err != nil {
				nodes.Release()
				r.nodes = nil
				return nil, fmt.Errorf("discovery.kubernetes: %w", err)
			}
			r.pods = p
			d.Pods = p
		}
		return d, nil
	}
	return nil, fmt.Errorf("discovery.mode %q unknown", dc.Mode)
}

// sync makes the running scrape loops match a discovery snapshot: new nodes of this shard get
// a loop, vanished ones end theirs (with staleness markers), and changed ones are updated.
func (r *kubeedgeReceiver) sync(ctx context.Context, nodes []discovery.Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return
	}
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if !discovery.Shard(n.Name, r.cfg.Shard.Index, r.cfg.Shard.Count) {
			continue
		}
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

// followingCloudcore is the cloudcore transport whose endpoints follow cloudcore's Service.
type followingCloudcore struct {
	*transport.Cloudcore
	eps *kube.ServiceEndpoints
	sub *kube.Subscription
}

func (f *followingCloudcore) Close() {
	f.sub.Remove()
	f.eps.Release()
	f.Cloudcore.Close()
}

// followService sets cc's endpoints to the ready endpoints of cloudcore's Service and keeps them
// so as replicas come and go; until the first list is in, the static endpoints serve.
func (r *kubeedgeReceiver) followService(ctx context.Context, cc *transport.Cloudcore, svc CloudcoreServiceConfig) (transport.Transport, error) {
	eps, err := r.registry.AcquireServiceEndpoints(kube.ServiceWatch{API: svc.APIConfig, Namespace: svc.Namespace, Name: svc.Name})
	if err != nil {
		cc.Close()
		return nil, fmt.Errorf("transport.cloudcore.service: %w", err)
	}
	update := func() {
		if addrs := eps.Addresses(svc.Port); len(addrs) > 0 {
			cc.SetEndpoints(addrs)
		}
	}
	sub, err := eps.OnChange(update)
	if err != nil {
		eps.Release()
		cc.Close()
		return nil, fmt.Errorf("transport.cloudcore.service: %w", err)
	}
	syncCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if sub.WaitForSync(syncCtx) {
		update()
	}
	return &followingCloudcore{Cloudcore: cc, eps: eps, sub: sub}, nil
}
