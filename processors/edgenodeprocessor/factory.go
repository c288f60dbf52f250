// Package edgenodeprocessor adds KubeEdge edge-node metadata to telemetry and guards the fleet's
// storage against a series explosion from any one edge node.
package edgenodeprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/metadata"
)

var capabilities = consumer.Capabilities{MutatesData: true}

// NewFactory returns the edgenode processor's factory.
func NewFactory() processor.Factory {
	return newFactory(kube.Shared)
}

// newFactory takes the registry of shared informers: kube.Shared in a collector, a registry
// over a fake clientset in tests.
func newFactory(reg *kube.Registry) processor.Factory {
	nodes := newNodeSources(reg)
	return processor.NewFactory(metadata.Type, createDefaultConfig,
		processor.WithMetrics(createMetrics(nodes), metadata.MetricsStability),
		processor.WithLogs(createLogs(nodes), metadata.LogsStability),
		processor.WithTraces(createTraces(nodes), metadata.TracesStability))
}

func createDefaultConfig() component.Config {
	return &Config{
		APIConfig:              kube.DefaultAPIConfig(),
		NodeSelector:           kube.DefaultEdgeSelector,
		WaitForMetadataTimeout: 10 * time.Second,
		NodeFrom: []NodeSource{
			{From: FromResourceAttribute, Name: "k8s.node.name"},
			{From: FromConnection},
		},
		Attributes: AttributesConfig{
			NodeName:  "k8s.node.name",
			NodeGroup: "node_group",
			Ready:     "node_ready",
			Labels:    kube.DefaultLabelMappings(),
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
		p, err := newProcessorOf(set, cfg.(*Config), nodes, true)
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
		p, err := newProcessorOf(set, cfg.(*Config), nodes, false)
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
		p, err := newProcessorOf(set, cfg.(*Config), nodes, false)
		if err != nil {
			return nil, err
		}
		return processorhelper.NewTraces(ctx, set, cfg, next, p.processTraces,
			processorhelper.WithCapabilities(capabilities),
			processorhelper.WithStart(p.start), processorhelper.WithShutdown(p.shutdown))
	}
}
