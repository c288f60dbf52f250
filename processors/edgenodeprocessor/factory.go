// Package edgenodeprocessor adds KubeEdge edge-node metadata to telemetry and guards the fleet's
// storage against a series explosion from any one edge node.
package edgenodeprocessor

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgetel/edgetel/internal/fleet"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/metadata"
)

// nodeGroupLabel is the label KubeEdge's NodeGroup controller puts on its member nodes.
const nodeGroupLabel = fleet.LabelNodeGroup

var capabilities = consumer.Capabilities{MutatesData: true}

// NewFactory returns the edgenode processor's factory.
func NewFactory() processor.Factory {
	return newFactory(kubeClient)
}

func newFactory(newClient clientFunc) processor.Factory {
	nodes := newNodeSources(newClient)
	return processor.NewFactory(metadata.Type, createDefaultConfig,
		processor.WithMetrics(createMetrics(nodes), metadata.MetricsStability),
		processor.WithLogs(createLogs(nodes), metadata.LogsStability),
		processor.WithTraces(createTraces(nodes), metadata.TracesStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		AuthType:               AuthServiceAccount,
		NodeSelector:           fleet.LabelEdgeRole,
		WaitForMetadataTimeout: 10 * time.Second,
		NodeFrom: []NodeSource{
			{From: FromResourceAttribute, Name: "k8s.node.name"},
			{From: FromConnection},
		},
		Attributes: AttributesConfig{
			NodeName:  "k8s.node.name",
			NodeGroup: "node_group",
			Ready:     "node_ready",
			Labels: []AttributeMapping{
				{Key: fleet.LabelRegion, Attribute: "region"},
				{Key: fleet.LabelSite, Attribute: "site"},
			},
		},
		Guard: GuardConfig{
			Enabled:            true,
			MaxSeriesPerNode:   10000,
			MaxSeriesPerMetric: 2000,
			Window:             15 * time.Minute,
			LogInterval:        time.Minute,
		},
	}
}

func createMetrics(nodes *nodeSources) processor.CreateMetricsFunc {
	return func(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Metrics) (processor.Metrics, error) {
		p, err := newProcessor(set, cfg.(*Config), nodes.get(cfg.(*Config)), true)
		if err != nil {
			return nil, err
		}
		return processorhelper.NewMetrics(ctx, set, cfg, next, p.processMetrics,
			processorhelper.WithCapabilities(capabilities),
			processorhelper.WithStart(p.start), processorhelper.WithShutdown(p.shutdown))
	}
}

func createLogs(nodes *nodeSources) processor.CreateLogsFunc {
	return func(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
		p, err := newProcessor(set, cfg.(*Config), nodes.get(cfg.(*Config)), false)
		if err != nil {
			return nil, err
		}
		return processorhelper.NewLogs(ctx, set, cfg, next, p.processLogs,
			processorhelper.WithCapabilities(capabilities),
			processorhelper.WithStart(p.start), processorhelper.WithShutdown(p.shutdown))
	}
}

func createTraces(nodes *nodeSources) processor.CreateTracesFunc {
	return func(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
		p, err := newProcessor(set, cfg.(*Config), nodes.get(cfg.(*Config)), false)
		if err != nil {
			return nil, err
		}
		return processorhelper.NewTraces(ctx, set, cfg, next, p.processTraces,
			processorhelper.WithCapabilities(capabilities),
			processorhelper.WithStart(p.start), processorhelper.WithShutdown(p.shutdown))
	}
}

// kubeClient builds the client from the in-cluster service account or a kubeconfig.
func kubeClient(cfg *Config) (kubernetes.Interface, error) {
	var rc *rest.Config
	var err error
	switch cfg.AuthType {
	case AuthServiceAccount:
		rc, err = rest.InClusterConfig()
	case AuthKubeConfig:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = cfg.KubeConfig
		overrides := &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	default:
		err = fmt.Errorf("auth_type %q is not supported", cfg.AuthType)
	}
	if err != nil {
		return nil, fmt.Errorf("auth_type %s: %w", cfg.AuthType, err)
	}
	return kubernetes.NewForConfig(rc)
}
