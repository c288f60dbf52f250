package kubeedgereceiver

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"
	"k8s.io/client-go/rest"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sharedcomponent"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/edgefleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/shardset"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
)

// fleetBuilder makes a receiver's discovery and transport from its configuration, once for all
// its signals (edgefleet.Fleet).
type fleetBuilder struct {
	cfg    *Config
	logger *zap.Logger
	// registry shares informers with other components; restConfig loads the API server's
	// config for transport apiserver and is replaced in tests, where there is no cluster.
	registry   *kube.Registry
	restConfig func(kube.APIConfig) (*rest.Config, error)
	// newClient builds the client that follows shard.statefulset.
	newClient kube.ClientFunc
}

// newFleet returns the fleet of a receiver and its builder.
func newFleet(set receiver.Settings, cfg *Config, reg *kube.Registry) (*edgefleet.Fleet, *fleetBuilder) {
	b := &fleetBuilder{cfg: cfg, logger: set.Logger, registry: reg, restConfig: kube.RestConfig, newClient: kube.NewClient}
	f := edgefleet.New(edgefleet.Options{Build: b.build, ShardIndex: cfg.Shard.shard(), ShardCount: cfg.Shard.Count,
		HandoverDelay: cfg.handoverDelay(), Handover: handoverCounter(set), Logger: set.Logger, Mode: cfg.Discovery.Mode})
	return f, b
}

// handoverCounter counts nodes moved to or from this shard by a reshard
// (otelcol_receiver_kubeedge_shard_handovers); nil if the meter refuses it.
func handoverCounter(set receiver.Settings) func(step string, n int) {
	c, err := set.MeterProvider.Meter(metadata.ScopeName).Int64Counter("otelcol_receiver_kubeedge_shard_handovers",
		metric.WithDescription("Edge nodes moved by a reshard, by step: taken (now scraped here) or released (let go once their new shard had taken over)."),
		metric.WithUnit("{node}"))
	if err != nil {
		set.Logger.Warn("kubeedge receiver: no handover metric", zap.Error(err))
		return nil
	}
	return func(step string, n int) {
		if n > 0 {
			c.Add(context.Background(), int64(n), metric.WithAttributes(attribute.String("step", step)))
		}
	}
}

// ownFleet holds a fleet no other signal shares.
func ownFleet(f *edgefleet.Fleet) (*sharedcomponent.Ref[*edgefleet.Fleet], error) {
	return sharedcomponent.NewMap[struct{}, *edgefleet.Fleet]().Hold(struct{}{}, func() (*edgefleet.Fleet, error) { return f, nil })
}

func (b *fleetBuilder) build(ctx context.Context, needs edgefleet.Needs) (edgefleet.Parts, error) {
	t, err := b.transport(ctx, needs.Conns)
	if err != nil {
		return edgefleet.Parts{}, err
	}
	d, release, err := b.discoverer(needs.Pods)
	if err != nil {
		t.Close()
		return edgefleet.Parts{}, err
	}
	parts := edgefleet.Parts{Discoverer: d, Transport: t, Release: release}
	if b.cfg.Shard.followsStatefulSet() {
		if parts.Shards, err = b.shardSet(); err != nil {
			t.Close()
			if release != nil {
				release()
			}
			return edgefleet.Parts{}, err
		}
	}
	return parts, nil
}

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// shardSet follows the StatefulSet of shard.statefulset.
func (b *fleetBuilder) shardSet() (edgefleet.ShardSource, error) {
	sc := b.cfg.Shard
	ns := sc.StatefulSet.Namespace
	if ns == "" {
		raw, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return nil, fmt.Errorf("shard.statefulset.namespace: not set, and the pod's own is unknown: %w", err)
		}
		ns = strings.TrimSpace(string(raw))
	}
	client, err := b.newClient(b.cfg.Discovery.Kubernetes.APIConfig)
	if err != nil {
		return nil, fmt.Errorf("shard.statefulset: %w", err)
	}
	return shardset.Watch{Client: client, Namespace: ns, Name: sc.StatefulSet.Name,
		ReplicasPerShard: sc.ReplicasPerShard, Logger: b.logger}, nil
}

// transport builds the configured transport keeping up to maxConns idle connections per host.
func (b *fleetBuilder) transport(ctx context.Context, maxConns int) (transport.Transport, error) {
	tc := b.cfg.Transport
	switch tc.Mode {
	case TransportCloudcore:
		tlsCfg, err := tc.Cloudcore.TLS.LoadTLSConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("transport.cloudcore.tls: %w", err)
		}
		cc, err := transport.NewCloudcore(tc.Cloudcore.Endpoints, tlsCfg, maxConns, b.cfg.ScrapeTimeout)
		if err != nil || tc.Cloudcore.Service.Name == "" {
			return cc, err
		}
		return b.followService(ctx, cc, tc.Cloudcore.Service)
	case TransportAPIServer:
		rc, err := b.restConfig(tc.APIServer.APIConfig)
		if err != nil {
			return nil, fmt.Errorf("transport.apiserver: %w", err)
		}
		rc = rest.CopyConfig(rc)
		rc.QPS, rc.Burst = -1, 0 // no client-side rate limit: max_concurrent_scrapes bounds the load
		return transport.NewAPIServer(rc, b.cfg.ScrapeTimeout)
	case TransportDirect:
		tlsCfg, err := tc.Direct.TLS.LoadTLSConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("transport.direct.tls: %w", err)
		}
		return transport.NewDirect(tc.Direct.Scheme, tc.Direct.Endpoint, tlsCfg, maxConns, b.cfg.ScrapeTimeout), nil
	}
	return nil, fmt.Errorf("transport.mode %q unknown", tc.Mode)
}

// discoverer builds the configured discovery; its kubernetes mode also watches pods when asked
// (the logs signal). It returns what to release when discovery stops.
func (b *fleetBuilder) discoverer(pods *kube.PodWatch) (discovery.Discoverer, func(), error) {
	dc := b.cfg.Discovery
	switch dc.Mode {
	case DiscoveryStatic:
		nodes := make([]kube.Node, len(dc.Static.Nodes))
		for i, n := range dc.Static.Nodes {
			nodes[i] = n.node()
		}
		return discovery.Static{Nodes: nodes}, nil, nil
	case DiscoveryFile:
		return discovery.File{Path: dc.File.Path, Interval: dc.File.RefreshInterval, Logger: b.logger}, nil, nil
	case DiscoveryKubernetes:
		nodes, err := b.registry.AcquireNodes(kube.NodeWatch{API: dc.Kubernetes.APIConfig,
			Selector: dc.Kubernetes.LabelSelector, Resync: dc.Kubernetes.ResyncPeriod})
		if err != nil {
			return nil, nil, fmt.Errorf("discovery.kubernetes: %w", err)
		}
		d := discovery.Kubernetes{Nodes: nodes, Settle: 100 * time.Millisecond}
		if pods == nil {
			return d, nodes.Release, nil
		}
		w := *pods
		w.API = dc.Kubernetes.APIConfig
		p, err := b.registry.AcquirePods(w)
		if err != nil {
			nodes.Release()
			return nil, nil, fmt.Errorf("discovery.kubernetes: %w", err)
		}
		d.Pods = p
		return d, func() { p.Release(); nodes.Release() }, nil
	}
	return nil, nil, fmt.Errorf("discovery.mode %q unknown", dc.Mode)
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
func (b *fleetBuilder) followService(ctx context.Context, cc *transport.Cloudcore, svc CloudcoreServiceConfig) (transport.Transport, error) {
	eps, err := b.registry.AcquireServiceEndpoints(kube.ServiceWatch{API: svc.APIConfig, Namespace: svc.Namespace, Name: svc.Name})
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
