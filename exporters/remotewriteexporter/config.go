package remotewriteexporter

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configretry"

	"github.com/edgetel/edgetel/internal/diskqueue"
	"github.com/edgetel/edgetel/internal/relabelconf"
	"github.com/edgetel/edgetel/internal/sampleconv"
)

// Remote-write protocol versions.
const (
	ProtocolV1 = "1.0"
	ProtocolV2 = "2.0"
)

// Config is the edgeremotewrite exporter's configuration.
type Config struct {
	// ClientConfig holds endpoint, tls, headers (e.g. X-Scope-OrgID, THANOS-TENANT), timeout,
	// proxy and auth extensions: the Collector's standard HTTP client settings.
	confighttp.ClientConfig `mapstructure:",squash"`

	// ProtocolVersion is the remote-write protocol: "1.0" (prometheus.WriteRequest) or "2.0"
	// (io.prometheus.write.v2.Request).
	ProtocolVersion string `mapstructure:"protocol_version"`
	// OutputConfig is add_metric_suffixes, resource_to_telemetry_conversion,
	// resource_constant_labels and external_labels,
	// shared with the objstore exporter. External labels are added to every series; the
	// conversion renames a series label of the same name exported_<name> first.
	sampleconv.OutputConfig `mapstructure:",squash"`
	// BasicAuth sets the Authorization header from a username and a password or password file.
	// Deprecated: use auth with the basicauth extension; read for one release, with a warning.
	BasicAuth *BasicAuthConfig `mapstructure:"basic_auth"`
	// BearerTokenFile is read on every request, so a rotated token is picked up.
	// Deprecated: use auth with the bearertokenauth extension (filename); read for one release,
	// with a warning.
	BearerTokenFile string `mapstructure:"bearer_token_file"`

	// WriteRelabelConfigs are Prometheus write_relabel_configs, in Prometheus' YAML shape: applied
	// to every series (external labels included) before it is buffered, so each destination can
	// keep, drop or rename its own share. Series they drop are counted (reason="relabeled").
	WriteRelabelConfigs []map[string]any `mapstructure:"write_relabel_configs"`

	Buffer  BufferConfig  `mapstructure:"buffer"`
	Sending SendingConfig `mapstructure:"sending"`
	// RetryConfig is the sender's backoff for retryable failures (network errors, 5xx, 429), on
	// the Collector's configretry keys. Retries never give up: the data stays in the buffer,
	// bounded by max_bytes and max_age, so enabled must stay true and max_elapsed_time 0.
	RetryConfig configretry.BackOffConfig `mapstructure:"retry_on_failure"`
	// Retry is the deprecated retry block that retry_on_failure and sending.max_retry_after
	// replace; read for one release, its keys win over theirs, with a warning at start.
	Retry *RetryConfig `mapstructure:"retry"`
}

// BasicAuthConfig is HTTP basic authentication.
type BasicAuthConfig struct {
	Username     string              `mapstructure:"username"`
	Password     configopaque.String `mapstructure:"password"`
	PasswordFile string              `mapstructure:"password_file"`
}

// BufferConfig is the on-disk buffer every accepted batch goes through.
type BufferConfig struct {
	// Directory holds the segment files and the read position. One exporter per directory.
	Directory string `mapstructure:"directory"`
	// MaxBytes bounds the buffer on disk; past it the oldest data is dropped and counted.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// MaxAge drops data whose newest sample is older than this when it comes up for sending
	// (0: keep everything, or the declared store_out_of_order_window). Set it to the remote
	// end's out-of-order window, as older samples would be rejected anyway.
	MaxAge time.Duration `mapstructure:"max_age"`
	// StoreOutOfOrderWindow declares the remote end's out-of-order window (Thanos Receive's
	// --tsdb.out-of-order.time-window, Prometheus' out_of_order_time_window, Cortex's
	// out_of_order_time_window): max_age defaults to it, and a longer max_age is warned about,
	// since a backlog older than the window drains into rejected. 0: not declared.
	StoreOutOfOrderWindow time.Duration `mapstructure:"store_out_of_order_window"`
	// SegmentSize is the size of one segment file; space is freed a segment at a time.
	SegmentSize int64 `mapstructure:"segment_size"`
	// Fsync is "always" (before ConsumeMetrics returns), "interval" or "never".
	Fsync         diskqueue.SyncPolicy `mapstructure:"fsync"`
	FsyncInterval time.Duration        `mapstructure:"fsync_interval"`
}

// SendingConfig shapes the requests.
type SendingConfig struct {
	// Shards is the number of parallel senders; a series always goes to the same shard.
	Shards int `mapstructure:"shards"`
	// MaxSamplesPerSend and MaxBytesPerSend (uncompressed) bound one request.
	MaxSamplesPerSend int `mapstructure:"max_samples_per_send"`
	MaxBytesPerSend   int `mapstructure:"max_bytes_per_send"`
	// MaxRetryAfter caps how long a Retry-After header can make a shard wait.
	MaxRetryAfter time.Duration `mapstructure:"max_retry_after"`
}

// RetryConfig is the resolved backoff of the sender, and the shape of the deprecated retry block.
type RetryConfig struct {
	InitialInterval     time.Duration `mapstructure:"initial_interval"`
	MaxInterval         time.Duration `mapstructure:"max_interval"`
	Multiplier          float64       `mapstructure:"multiplier"`
	RandomizationFactor float64       `mapstructure:"randomization_factor"`
	// MaxRetryAfter caps how long a Retry-After header can make a shard wait.
	MaxRetryAfter time.Duration `mapstructure:"max_retry_after"`
}

// Validate checks the configuration, naming the offending key.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(c.Endpoint); c.Endpoint == "" || err != nil || u.Scheme == "" || u.Host == "" {
		add("endpoint: must be an absolute http(s) URL, got %q", c.Endpoint)
	}
	if c.ProtocolVersion != ProtocolV1 && c.ProtocolVersion != ProtocolV2 {
		add("protocol_version: must be %q or %q, got %q", ProtocolV1, ProtocolV2, c.ProtocolVersion)
	}
	if err := c.ValidateExternalLabels(); err != nil {
		errs = append(errs, err)
	}
	if _, err := relabelconf.Decode("write_relabel_configs", c.WriteRelabelConfigs); err != nil {
		errs = append(errs, err)
	}
	if c.Auth.HasValue() && (c.BasicAuth != nil || c.BearerTokenFile != "") {
		add("auth: cannot be used together with the deprecated basic_auth or bearer_token_file")
	}
	if c.BasicAuth != nil {
		if c.BasicAuth.Username == "" {
			add("basic_auth.username: must be set")
		}
		if c.BasicAuth.Password != "" && c.BasicAuth.PasswordFile != "" {
			add("basic_auth: set password or password_file, not both")
		}
		if c.BearerTokenFile != "" {
			add("bearer_token_file: cannot be used together with basic_auth")
		}
	}
	b := c.Buffer
	if b.Directory == "" {
		add("buffer.directory: must be set")
	}
	if b.MaxBytes < 1<<20 {
		add("buffer.max_bytes: must be at least 1 MiB, got %d", b.MaxBytes)
	}
	if b.MaxAge < 0 {
		add("buffer.max_age: must not be negative")
	}
	if b.StoreOutOfOrderWindow < 0 {
		add("buffer.store_out_of_order_window: must not be negative")
	}
	if b.SegmentSize < 64<<10 {
		add("buffer.segment_size: must be at least 64 KiB, got %d", b.SegmentSize)
	}
	switch b.Fsync {
	case diskqueue.SyncAlways, diskqueue.SyncNever:
	case diskqueue.SyncInterval:
		if b.FsyncInterval <= 0 {
			add("buffer.fsync_interval: must be positive with fsync: interval")
		}
	default:
		add("buffer.fsync: must be always, interval or never, got %q", b.Fsync)
	}
	s := c.Sending
	if s.Shards < 1 || s.Shards > 256 {
		add("sending.shards: must be between 1 and 256, got %d", s.Shards)
	}
	if s.MaxSamplesPerSend < 1 {
		add("sending.max_samples_per_send: must be positive")
	}
	if s.MaxBytesPerSend < 1024 {
		add("sending.max_bytes_per_send: must be at least 1024")
	}
	if b.MaxBytes >= 1<<20 && int64(s.MaxBytesPerSend) > b.MaxBytes/2 {
		// A record holds up to max_bytes_per_send; one that cannot fit the buffer is refused.
		add("sending.max_bytes_per_send: must not exceed half of buffer.max_bytes (%d)", b.MaxBytes/2)
	}
	key := "retry_on_failure"
	if c.Retry != nil {
		key = "retry (deprecated) merged into retry_on_failure"
	}
	r := c.retry()
	if r.InitialInterval <= 0 || r.MaxInterval < r.InitialInterval {
		add("%s: initial_interval must be positive and max_interval at least initial_interval", key)
	}
	if r.Multiplier < 1 {
		add("%s.multiplier: must be at least 1", key)
	}
	if r.RandomizationFactor < 0 || r.RandomizationFactor > 1 {
		add("%s.randomization_factor: must be between 0 and 1", key)
	}
	if !c.RetryConfig.Enabled {
		add("retry_on_failure.enabled: must be true: the sender retries until the buffer's max_bytes or max_age drops the data")
	}
	if c.RetryConfig.MaxElapsedTime != 0 {
		add("retry_on_failure.max_elapsed_time: must be 0: retries never give up, max_bytes and max_age bound the buffer")
	}
	if r.MaxRetryAfter < 0 {
		add("sending.max_retry_after: must not be negative")
	}
	return errors.Join(errs...)
}

// retry is the sender's backoff: retry_on_failure and sending.max_retry_after, with the keys set
// in the deprecated retry block taking precedence.
func (c *Config) retry() RetryConfig {
	b := c.RetryConfig
	r := RetryConfig{InitialInterval: b.InitialInterval, MaxInterval: b.MaxInterval, Multiplier: b.Multiplier,
		RandomizationFactor: b.RandomizationFactor, MaxRetryAfter: c.Sending.MaxRetryAfter}
	old := c.Retry
	if old == nil {
		return r
	}
	if old.InitialInterval != 0 {
		r.InitialInterval = old.InitialInterval
	}
	if old.MaxInterval != 0 {
		r.MaxInterval = old.MaxInterval
	}
	if old.Multiplier != 0 {
		r.Multiplier = old.Multiplier
	}
	if old.RandomizationFactor != 0 {
		r.RandomizationFactor = old.RandomizationFactor
	}
	if old.MaxRetryAfter != 0 {
		r.MaxRetryAfter = old.MaxRetryAfter
	}
	return r
}

// maxAge is buffer.max_age, or the declared store_out_of_order_window when max_age is unset.
func (b BufferConfig) maxAge() time.Duration {
	if b.MaxAge == 0 {
		return b.StoreOutOfOrderWindow
	}
	return b.MaxAge
}

// windowWarning says why buffer.max_age does not fit the declared out-of-order window, or "".
func (b BufferConfig) windowWarning() string {
	w := b.StoreOutOfOrderWindow
	if w == 0 || b.maxAge() <= w {
		return ""
	}
	return fmt.Sprintf("edgeremotewrite: buffer.max_age (%s) exceeds the remote end's out-of-order window "+
		"(buffer.store_out_of_order_window %s): after an outage longer than the window, the remote end refuses "+
		"the older part of the backlog and it is dropped as rejected; lower max_age or widen the window", b.MaxAge, w)
}
