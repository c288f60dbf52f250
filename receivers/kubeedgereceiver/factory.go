package kubeedgereceiver

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configtls"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/edgetel/edgetel/internal/fleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
)

// Default limits. A real kubelet's largest endpoint, /metrics/cadvisor, exposes about 4,600
// samples for a node with a few dozen containers (fixtures/kubelet), /metrics a few thousand
// and /metrics/resource about a hundred; cadvisor grows with the containers, roughly 100
// samples each. 50,000 samples per endpoint is ten times the capture, room for a node running
// the kubelet's 110-pod maximum with sidecars; 100,000 series per node covers all three
// endpoints of such a node and bounds the cache one node can fill to about 40 MB (≈ 400 B per
// series).
const (
	DefaultSampleLimit     = 50_000
	DefaultNodeSeriesLimit = 100_000
)

// NewFactory returns the kubeedge receiver's factory.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(metadata.Type, createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		CollectionInterval:   30 * time.Second,
		ScrapeTimeout:        10 * time.Second,
		Job:                  "kubeedge",
		MaxConcurrentScrapes: 256,
		BodySizeLimit:        64 << 20,
		SampleLimit:          DefaultSampleLimit,
		NodeSeriesLimit:      DefaultNodeSeriesLimit,
		HonorTimestamps:      true,
		Endpoints: EndpointsConfig{
			Metrics:  EndpointConfig{Enabled: true, Path: "/metrics"},
			Cadvisor: EndpointConfig{Enabled: true, Path: "/metrics/cadvisor"},
			Resource: EndpointConfig{Enabled: true, Path: "/metrics/resource"},
		},
		NodeLabels: map[string]string{"region": fleet.LabelRegion, "site": fleet.LabelSite},
		Shard:      ShardConfig{Index: 0, Count: 1},
		Discovery: DiscoveryConfig{
			Mode: DiscoveryKubernetes,
			Kubernetes: KubernetesDiscoveryConfig{
				APIConfig:     APIConfig{AuthType: AuthServiceAccount},
				LabelSelector: discovery.DefaultEdgeSelector,
			},
			File: FileDiscoveryConfig{RefreshInterval: 10 * time.Second},
		},
		Transport: TransportConfig{
			Mode:      TransportCloudcore,
			Cloudcore: CloudcoreTransportConfig{Endpoints: []string{"cloudcore.kubeedge.svc:10003"}, TLS: configtls.NewDefaultClientConfig()},
			APIServer: APIServerTransportConfig{APIConfig: APIConfig{AuthType: AuthServiceAccount}},
			Direct:    DirectTransportConfig{Endpoint: transport.DefaultDirectEndpoint, Scheme: "http", TLS: configtls.NewDefaultClientConfig()},
		},
	}
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return newReceiver(set, cfg.(*Config), next)
}
