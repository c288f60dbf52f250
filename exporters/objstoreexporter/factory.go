package objstoreexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/edgetel/edgetel/exporters/objstoreexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/sampleconv"
)

// defaultHeadAPIEndpoint is where head_api listens when enabled without an endpoint: loopback
// only, for a sidecar in the same pod.
const defaultHeadAPIEndpoint = "localhost:9095"

// Bounds of one remote-read request to head_api. Prometheus' read clients and Thanos' sidecar send
// one query per request; the sample bound is Prometheus' per-query default
// (--storage.remote.read-sample-limit), here shared by the request's queries.
const (
	defaultMaxQueriesPerRequest = 4
	defaultMaxSamplesPerRequest = 5e7
)

// NewFactory returns the objstore exporter's factory.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability))
}

// DefaultHeadAPIConfig is head_api's configuration when enabled with no other settings.
func DefaultHeadAPIConfig() HeadAPIConfig {
	h := HeadAPIConfig{ServerConfig: confighttp.NewDefaultServerConfig(),
		MaxQueriesPerRequest: defaultMaxQueriesPerRequest, MaxSamplesPerRequest: defaultMaxSamplesPerRequest}
	h.NetAddr.Endpoint = defaultHeadAPIEndpoint
	return h
}

func createDefaultConfig() component.Config {
	retry := configretry.NewDefaultBackOffConfig()
	retry.InitialInterval = time.Second
	retry.MaxInterval = 5 * time.Minute
	retry.MaxElapsedTime = 0
	// A failed append is not retried: retries would hold up the whole pipeline (the Collector
	// calls its exporters in turn), and remote write in it, for minutes while the local disk is
	// full or stalled.
	appendRetry := configretry.NewDefaultBackOffConfig()
	appendRetry.Enabled = false
	head := DefaultHeadAPIConfig()
	return &Config{
		TimeoutConfig: exporterhelper.NewDefaultTimeoutConfig(),
		OutputConfig:  sampleconv.DefaultOutputConfig(),
		// Appends go to a local WAL: no queue unless configured, so backpressure reaches the receiver.
		QueueConfig:      configoptional.Default(exporterhelper.NewDefaultQueueConfig()),
		RetryConfig:      appendRetry,
		Directory:        "/var/lib/edgetel/objstore",
		BlockDuration:    2 * time.Hour,
		OutOfOrderWindow: 6 * time.Hour,
		MaxFutureSkew:    sampleconv.DefaultMaxFutureSkew,
		LocalRetention:   6 * time.Hour,
		LocalMaxBytes:    8 << 30,
		LocalMaxAge:      72 * time.Hour,
		UploadInterval:   30 * time.Second,
		UploadRetry:      retry,
		HeadAPI:          configoptional.Default(head),
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	e, err := newExporter(c, set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	return wrapExporter(ctx, set, c, e)
}

// wrapExporter puts exporterhelper's timeout, retry and queue around e.
func wrapExporter(ctx context.Context, set exporter.Settings, c *Config, e *objstoreExporter) (exporter.Metrics, error) {
	return exporterhelper.NewMetrics(ctx, set, c, e.push,
		exporterhelper.WithStart(e.Start),
		exporterhelper.WithShutdown(e.Shutdown),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithRetry(c.RetryConfig),
		exporterhelper.WithQueue(c.QueueConfig),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
	)
}
