// Package remotewriteexporter is the edgeremotewrite exporter: Prometheus remote write (1.0 or
// 2.0) through a durable on-disk buffer, so an edge agent loses nothing through cloud-link
// outages and restarts.
package remotewriteexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/edgetel/edgetel/exporters/remotewriteexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/diskqueue"
	"github.com/edgetel/edgetel/internal/sampleconv"
)

// NewFactory returns the edgeremotewrite exporter factory.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability))
}

func createDefaultConfig() component.Config {
	client := confighttp.NewDefaultClientConfig()
	client.Timeout = 30 * time.Second
	return &Config{
		ClientConfig:    client,
		ProtocolVersion: ProtocolV1,
		OutputConfig:    sampleconv.DefaultOutputConfig(),
		Buffer: BufferConfig{
			MaxBytes:      1 << 30,
			SegmentSize:   diskqueue.DefaultSegmentSize,
			Fsync:         diskqueue.SyncInterval,
			FsyncInterval: time.Second,
		},
		Sending: SendingConfig{
			Shards:            4,
			MaxSamplesPerSend: 5000,
			MaxBytesPerSend:   4 << 20,
			MaxRetryAfter:     5 * time.Minute,
		},
		RetryConfig: configretry.BackOffConfig{
			Enabled:             true,
			InitialInterval:     100 * time.Millisecond,
			MaxInterval:         10 * time.Second,
			Multiplier:          2,
			RandomizationFactor: 0.5,
		},
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	e := newExporter(c, set)
	// The buffer is the queue and the sender retries: exporterhelper only adds its standard
	// telemetry, with no queue, no retry and no timeout around the append to disk.
	return exporterhelper.NewMetrics(ctx, set, cfg, e.push,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithTimeout(exporterhelper.TimeoutConfig{Timeout: 0}),
		exporterhelper.WithRetry(configretry.BackOffConfig{Enabled: false}),
	)
}
