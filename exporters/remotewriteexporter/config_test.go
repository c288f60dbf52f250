package remotewriteexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgetel/edgetel/exporters/remotewriteexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/diskqueue"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	cfg := loadConfig(t, "")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "http://127.0.0.1:9090/api/v1/write", cfg.Endpoint)
	assert.Equal(t, ProtocolV1, cfg.ProtocolVersion)
	assert.Equal(t, int64(1<<30), cfg.Buffer.MaxBytes)
	assert.Equal(t, diskqueue.SyncInterval, cfg.Buffer.Fsync)
	assert.Equal(t, 4, cfg.Sending.Shards)
	assert.Equal(t, 30*time.Second, cfg.Timeout)
	assert.NoError(t, componenttest.CheckConfigStruct(cfg))
}

func TestConfigFull(t *testing.T) {
	cfg := loadConfig(t, "full")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, ProtocolV2, cfg.ProtocolVersion)
	assert.Equal(t, 10*time.Second, cfg.Timeout)
	v, ok := cfg.Headers.Get("THANOS-TENANT")
	assert.True(t, ok)
	assert.Equal(t, configopaque.String("edge-site-7"), v)
	assert.Equal(t, "/etc/edgetel/ca.crt", cfg.TLS.CAFile)
	assert.Equal(t, map[string]string{"cluster": "edge-eu-1", "replica": "a"}, cfg.ExternalLabels)
	assert.Equal(t, "/var/run/secrets/token", cfg.BearerTokenFile)
	assert.Equal(t, BufferConfig{
		Directory: "/var/lib/edgetel/rw-full", MaxBytes: 256 << 20, MaxAge: 2 * time.Hour,
		SegmentSize: 4 << 20, Fsync: diskqueue.SyncAlways, FsyncInterval: time.Second,
	}, cfg.Buffer)
	assert.Equal(t, SendingConfig{Shards: 8, MaxSamplesPerSend: 10000, MaxBytesPerSend: 2 << 20, MaxRetryAfter: 2 * time.Minute}, cfg.Sending)
	assert.Equal(t, configretry.BackOffConfig{Enabled: true, InitialInterval: 50 * time.Millisecond, MaxInterval: time.Minute,
		Multiplier: 1.5, RandomizationFactor: 0.2}, cfg.RetryConfig)
	assert.Equal(t, RetryConfig{InitialInterval: 50 * time.Millisecond, MaxInterval: time.Minute,
		Multiplier: 1.5, RandomizationFactor: 0.2, MaxRetryAfter: 2 * time.Minute}, cfg.retry())
}

// The deprecated retry block still works for one release: its keys set the sender's backoff,
// and the exporter warns once, naming the replacement.
func TestDeprecatedRetryWarnsAndWorks(t *testing.T) {
	cfg := loadConfig(t, "deprecated_retry")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, RetryConfig{InitialInterval: 50 * time.Millisecond, MaxInterval: time.Minute,
		Multiplier: 1.5, RandomizationFactor: 0.2, MaxRetryAfter: 2 * time.Minute}, cfg.retry())
	core, logs := observer.New(zapcore.WarnLevel)
	set := exportertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	newExporter(cfg, set)
	warnings := logs.FilterMessageSnippet("retry block is deprecated").All()
	require.Len(t, warnings, 1)
	assert.Contains(t, warnings[0].Message, "retry_on_failure")

	quiet, quietLogs := observer.New(zapcore.WarnLevel)
	set.Logger = zap.New(quiet)
	newExporter(loadConfig(t, ""), set)
	assert.Zero(t, quietLogs.Len())

	cfg.Retry.Multiplier = 0.5
	assert.ErrorContains(t, confmap.Validate(cfg), "retry (deprecated) merged into retry_on_failure.multiplier: must be at least 1")
}

func TestRetryNeverGivesUp(t *testing.T) {
	err := confmap.Validate(loadConfig(t, "retry_gives_up"))
	assert.ErrorContains(t, err, "retry_on_failure.enabled: must be true")
	assert.ErrorContains(t, err, "retry_on_failure.max_elapsed_time: must be 0")
}

func TestConfigInvalid(t *testing.T) {
	err := confmap.Validate(loadConfig(t, "invalid"))
	require.Error(t, err)
	for _, key := range []string{
		"endpoint:", "protocol_version:", `external_labels: "bad-name"`, "basic_auth.username:",
		"bearer_token_file:", "buffer.directory:", "buffer.fsync:", "sending.shards:",
		"sending.max_bytes_per_send: must not exceed half of buffer.max_bytes",
	} {
		assert.ErrorContains(t, err, key)
	}
}

func TestConfigMaxBytesTooSmall(t *testing.T) {
	cfg := loadConfig(t, "")
	cfg.Buffer.MaxBytes = 10
	assert.ErrorContains(t, confmap.Validate(cfg), "buffer.max_bytes: must be at least 1 MiB")
}

// A declared out-of-order window is max_age's default, and a longer max_age is warned about at
// start: a backlog older than the window would drain into rejected.
func TestMaxAgeFitsTheStoreWindow(t *testing.T) {
	b := BufferConfig{StoreOutOfOrderWindow: 6 * time.Hour}
	assert.Equal(t, 6*time.Hour, b.maxAge(), "max_age defaults to the window")
	assert.Empty(t, b.windowWarning())
	b.MaxAge = 2 * time.Hour
	assert.Equal(t, 2*time.Hour, b.maxAge())
	assert.Empty(t, b.windowWarning())
	assert.Equal(t, time.Duration(0), BufferConfig{}.maxAge(), "no window, no max_age: keep everything")

	cfg := createDefaultConfig().(*Config)
	cfg.Endpoint = "http://127.0.0.1:1/api/v1/receive"
	cfg.Buffer.Directory = t.TempDir()
	cfg.Buffer.MaxAge = 168 * time.Hour
	cfg.Buffer.StoreOutOfOrderWindow = 6 * time.Hour
	require.NoError(t, cfg.Validate())
	core, logs := observer.New(zapcore.WarnLevel)
	set := exportertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	newExporter(cfg, set)
	w := logs.FilterMessageSnippet("exceeds the remote end's out-of-order window").All()
	require.Len(t, w, 1)
	assert.Contains(t, w[0].Message, "buffer.max_age (168h0m0s)")

	cfg.Buffer.StoreOutOfOrderWindow = -time.Hour
	assert.ErrorContains(t, cfg.Validate(), "buffer.store_out_of_order_window: must not be negative")
}
