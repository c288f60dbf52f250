package kubeedgereceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sampleconv"
	"github.com/edgetel/edgetel/internal/sharedcomponent"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/edgefleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/logs"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
)

// Default limits. A real kubelet's largest endpoint, /metrics/cadvisor, exposes 4,621 samples
// for 19 pods in 58 cgroups, about 80 per cgroup (fixtures/kubelet/metrics-cadvisor-1.35.txt);
// /metrics 1,709 (metrics-kubelet-1.21.txt) and /metrics/resource 123. The kubelet's 110-pod
// maximum with two containers per pod is about 330 cgroups, 27,000 cadvisor samples: 50,000 per
// endpoint leaves room. 100,000 series per node covers all three endpoints of such a node and
// bounds the series cache one node can fill at about 40 MB (≈ 400 B per cached series).
//
// A cadvisor body is 1.4 MB for those 19 pods, about 8 MB at 110 pods: 16 MiB leaves twice that,
// and a bomb's body fails (body_too_large) before it is parsed or held.
const (
	DefaultBodySizeLimit   = 16 << 20
	DefaultSampleLimit     = 50_000
	DefaultNodeSeriesLimit = 100_000
)

// Default label limits (Prometheus has none by default). A kubelet series has about a dozen
// labels plus the target labels; its longest values are cgroup paths and image references of
// about 200 bytes. Without bounds, a body within body_size_limit could hold series of megabyte
// labels, each cached for the node's life.
const (
	DefaultLabelLimit            = 64
	DefaultLabelNameLengthLimit  = 128
	DefaultLabelValueLengthLimit = 1024
)

// NewFactory returns the kubeedge receiver's factory.
func NewFactory() receiver.Factory {
	return newFactory(kube.Shared)
}

// newFactory takes the registry of shared informers: kube.Shared in a collector, a registry
// over a fake clientset in tests. The factory holds one fleet per receiver ID, which the ID's
// metrics and logs signals share.
func newFactory(reg *kube.Registry) receiver.Factory {
	fleets := sharedcomponent.NewMap[component.ID, *edgefleet.Fleet]()
	// The Collector hands every signal of an ID the same *Config.
	hold := func(set receiver.Settings, cfg *Config) (*sharedcomponent.Ref[*edgefleet.Fleet], error) {
		return fleets.Hold(set.ID, func() (*edgefleet.Fleet, error) {
			f, _ := newFleet(set, cfg, reg)
			return f, nil
		})
	}
	return receiver.NewFactory(metadata.Type, createDefaultConfig,
		receiver.WithMetrics(func(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
			fleet, err := hold(set, cfg.(*Config))
			if err != nil {
				return nil, err
			}
			r, err := newMetricsReceiver(set, cfg.(*Config), next, fleet)
			if err != nil {
				_ = fleet.Shutdown(context.Background())
			}
			return r, err
		}, metadata.MetricsStability),
		receiver.WithLogs(func(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
			fleet, err := hold(set, cfg.(*Config))
			if err != nil {
				return nil, err
			}
			r, err := newLogsReceiverOn(set, cfg.(*Config), next, reg, fleet)
			if err != nil {
				_ = fleet.Shutdown(context.Background())
			}
			return r, err
		}, metadata.LogsStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		CollectionInterval:    30 * time.Second,
		ScrapeTimeout:         10 * time.Second,
		Job:                   "kubeedge",
		MaxConcurrentScrapes:  256,
		BodySizeLimit:         DefaultBodySizeLimit,
		SampleLimit:           DefaultSampleLimit,
		NodeSeriesLimit:       DefaultNodeSeriesLimit,
		LabelLimit:            DefaultLabelLimit,
		LabelNameLengthLimit:  DefaultLabelNameLengthLimit,
		LabelValueLengthLimit: DefaultLabelValueLengthLimit,
		MaxFutureSkew:         sampleconv.DefaultMaxFutureSkew,
		HonorTimestamps:       true,
		Endpoints: EndpointsConfig{
			Metrics:  EndpointConfig{Enabled: true, Path: "/metrics"},
			Cadvisor: EndpointConfig{Enabled: true, Path: "/metrics/cadvisor"},
			Resource: EndpointConfig{Enabled: true, Path: "/metrics/resource"},
		},
		Attributes: AttributesConfig{Labels: kube.DefaultLabelMappings()},
		Shard:      ShardConfig{Index: 0, Count: 1, ReplicasPerShard: 1},
		Discovery: DiscoveryConfig{
			Mode: DiscoveryKubernetes,
			Kubernetes: KubernetesDiscoveryConfig{
				APIConfig:     kube.DefaultAPIConfig(),
				LabelSelector: kube.DefaultEdgeSelector,
			},
			File: FileDiscoveryConfig{RefreshInterval: 10 * time.Second},
		},
		Transport: TransportConfig{
			Mode: TransportCloudcore,
			Cloudcore: CloudcoreTransportConfig{Endpoints: []string{"cloudcore.kubeedge.svc:10003"}, TLS: configtls.NewDefaultClientConfig(),
				Service: CloudcoreServiceConfig{APIConfig: kube.DefaultAPIConfig(), Namespace: "kubeedge", Port: "cloudstream"}},
			APIServer: APIServerTransportConfig{APIConfig: kube.DefaultAPIConfig()},
			Direct:    DirectTransportConfig{Endpoint: transport.DefaultDirectEndpoint, Scheme: "http", TLS: configtls.NewDefaultClientConfig()},
		},
		Logs: logs.DefaultConfig(),
	}
}
