package objstoreexporter

import (
	"errors"
	"fmt"
	"net"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"gopkg.in/yaml.v2"

	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/sampleconv"
)

// Config is the objstore exporter's configuration.
type Config struct {
	TimeoutConfig exporterhelper.TimeoutConfig                             `mapstructure:",squash"`
	QueueConfig   configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	RetryConfig   configretry.BackOffConfig                                `mapstructure:"retry_on_failure"`

	// Directory holds the local TSDB (<directory>/tsdb), the upload state and, by default, the
	// FILESYSTEM bucket (<directory>/bucket).
	Directory string `mapstructure:"directory"`
	// Bucket is Thanos' bucket configuration (type, config, prefix). Empty: a FILESYSTEM bucket
	// under Directory.
	Bucket BucketConfig `mapstructure:"bucket"`
	// OutputConfig is add_metric_suffixes, resource_to_telemetry_conversion,
	// resource_constant_labels and external_labels,
	// shared with the remote-write exporter. External labels identify this writer in the bucket
	// (thanos.labels of every block). Required: Thanos refuses blocks without them, and each
	// writer needs its own set.
	sampleconv.OutputConfig `mapstructure:",squash"`
	// MaxFutureSkew drops samples more than this ahead of this host's clock (reason clock_skew;
	// 0: no bound), the same key and default as the kubeedge receiver's check at the scrape.
	MaxFutureSkew time.Duration `mapstructure:"max_future_skew"`
	// BlockDuration is the time range of one block (tsdb min = max block duration).
	BlockDuration time.Duration `mapstructure:"block_duration"`
	// OutOfOrderWindow is how far behind the newest sample a sample may be and still be stored.
	OutOfOrderWindow time.Duration `mapstructure:"out_of_order_window"`
	// LocalRetention is how long a block stays on local disk after it was uploaded.
	LocalRetention time.Duration `mapstructure:"local_retention"`
	// LocalMaxBytes bounds the local TSDB (blocks, WAL and head chunks): beyond it the oldest
	// blocks leave local disk, uploaded or not. 0: no bound.
	LocalMaxBytes int64 `mapstructure:"local_max_bytes"`
	// LocalMaxAge drops local blocks that end more than this behind the newest block, uploaded
	// or not. 0: no bound.
	LocalMaxAge time.Duration `mapstructure:"local_max_age"`
	// UploadInterval is how often the exporter cuts due blocks and uploads pending ones.
	UploadInterval time.Duration `mapstructure:"upload_interval"`
	// FlushOnShutdown writes the whole head out as blocks when the exporter stops and uploads
	// every pending block within the shutdown's time, as Thanos Receive does: a collector that
	// goes away for good (a shard removed by a scale-down) leaves nothing behind on its volume.
	FlushOnShutdown bool `mapstructure:"flush_on_shutdown"`
	// UploadRetry is the backoff between failed upload attempts; max_elapsed_time is ignored
	// (a block is retried until it is uploaded).
	UploadRetry configretry.BackOffConfig `mapstructure:"upload_retry"`
	// HeadAPI serves the local TSDB with the Prometheus endpoints a Thanos sidecar (shipping
	// off) and edgetel-query read: remote read, status/config, buildinfo. Off unless configured.
	HeadAPI configoptional.Optional[HeadAPIConfig] `mapstructure:"head_api"`
}

// HeadAPIConfig is the head API's HTTP server and the bounds of one remote-read request.
type HeadAPIConfig struct {
	confighttp.ServerConfig `mapstructure:",squash"`
	// MaxQueriesPerRequest bounds the queries of one remote-read request: Prometheus' and
	// Thanos' clients send one.
	MaxQueriesPerRequest int `mapstructure:"max_queries_per_request"`
	// MaxSamplesPerRequest bounds the samples one remote-read request may make the exporter
	// hold (shared by its queries): Prometheus' limit is per query, so several match-all
	// queries in one request could hold that many times as much.
	MaxSamplesPerRequest int `mapstructure:"max_samples_per_request"`
}

// validate checks the head API's settings: beyond loopback it must authenticate its clients,
// since it serves every sample not yet uploaded.
func (h *HeadAPIConfig) validate() []error {
	var errs []error
	if h.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("head_api.endpoint: must not be empty"))
	} else if !h.Auth.HasValue() && !loopback(h.NetAddr.Endpoint) {
		errs = append(errs, fmt.Errorf("head_api.endpoint: beyond loopback without auth: set auth (e.g. a bearertokenauth extension with a token file) so that only edgetel-query and the Thanos sidecar read the head; got %s", h.NetAddr.Endpoint))
	}
	if h.MaxQueriesPerRequest < 1 {
		errs = append(errs, fmt.Errorf("head_api.max_queries_per_request: must be at least 1, got %d", h.MaxQueriesPerRequest))
	}
	if h.MaxSamplesPerRequest < h.MaxQueriesPerRequest {
		errs = append(errs, fmt.Errorf("head_api.max_samples_per_request: must be at least max_queries_per_request, got %d", h.MaxSamplesPerRequest))
	}
	return errs
}

// loopback tells whether endpoint (host:port) listens on loopback only.
func loopback(endpoint string) bool {
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// BucketConfig is Thanos' bucket configuration as the collector's configuration carries it.
type BucketConfig map[string]any

// Unmarshal takes the section as plain values: a value from `${env:...}` otherwise stays the
// Collector's internal expanded-value record, which objstore's YAML cannot read (an S3
// `insecure: ${env:S3_INSECURE}` failed with "cannot unmarshal !!map into bool").
func (b *BucketConfig) Unmarshal(conf *confmap.Conf) error {
	*b = conf.ToStringMap()
	return nil
}

// Validate checks the configuration and names the offending key.
func (c *Config) Validate() error {
	var errs []error
	if c.Directory == "" {
		errs = append(errs, errors.New("directory: must not be empty"))
	}
	if len(c.ExternalLabels) == 0 {
		errs = append(errs, errors.New("external_labels: at least one label is required (Thanos groups and deduplicates blocks by them)"))
	}
	if err := c.ValidateExternalLabels(); err != nil {
		errs = append(errs, err)
	}
	if c.BlockDuration < time.Minute || c.BlockDuration%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("block_duration: must be at least 1m and whole milliseconds, got %s", c.BlockDuration))
	}
	if c.MaxFutureSkew < 0 {
		errs = append(errs, fmt.Errorf("max_future_skew: must not be negative, got %s", c.MaxFutureSkew))
	}
	if c.OutOfOrderWindow < 0 {
		errs = append(errs, fmt.Errorf("out_of_order_window: must not be negative, got %s", c.OutOfOrderWindow))
	}
	if c.LocalRetention < 0 {
		errs = append(errs, fmt.Errorf("local_retention: must not be negative, got %s", c.LocalRetention))
	}
	if c.LocalMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("local_max_bytes: must not be negative, got %d", c.LocalMaxBytes))
	}
	if c.LocalMaxAge != 0 && c.LocalMaxAge < c.BlockDuration {
		errs = append(errs, fmt.Errorf("local_max_age: must be 0 (no bound) or at least block_duration, got %s", c.LocalMaxAge))
	}
	if c.TimeoutConfig.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive (a batch that cannot be stored within it is refused, so the pipeline never waits longer), got %s", c.TimeoutConfig.Timeout))
	}
	if c.UploadInterval <= 0 {
		errs = append(errs, fmt.Errorf("upload_interval: must be positive, got %s", c.UploadInterval))
	}
	if c.UploadRetry.InitialInterval <= 0 || c.UploadRetry.MaxInterval < c.UploadRetry.InitialInterval {
		errs = append(errs, fmt.Errorf("upload_retry.initial_interval: must be positive and not above max_interval (%s), got %s", c.UploadRetry.MaxInterval, c.UploadRetry.InitialInterval))
	}
	if h := c.HeadAPI.Get(); h != nil {
		errs = append(errs, h.validate()...)
	}
	if _, err := c.bucketYAML(); err != nil {
		errs = append(errs, fmt.Errorf("bucket: %w", err))
	}
	return errors.Join(errs...)
}

// bucketYAML renders the bucket section as Thanos' YAML (the default FILESYSTEM bucket when empty).
func (c *Config) bucketYAML() ([]byte, error) {
	if len(c.Bucket) == 0 {
		return bucket.DefaultYAML(c.Directory), nil
	}
	out, err := yaml.Marshal(c.Bucket)
	if err != nil {
		return nil, err
	}
	if _, err := bucket.ParseYAML(out); err != nil {
		return nil, err
	}
	return out, nil
}
