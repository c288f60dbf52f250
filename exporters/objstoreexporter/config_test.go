package objstoreexporter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"

	"github.com/edgetel/edgetel/exporters/objstoreexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/sampleconv"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	id := component.NewID(metadata.Type)
	if name != "" {
		id = component.NewIDWithName(metadata.Type, name)
	}
	sub, err := cm.Sub(id.String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	require.NoError(t, componenttest.CheckConfigStruct(NewFactory().CreateDefaultConfig()))
	cfg := loadConfig(t, "")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, 2*time.Hour, cfg.BlockDuration)
	assert.Equal(t, 6*time.Hour, cfg.OutOfOrderWindow)
	assert.Equal(t, sampleconv.DefaultMaxFutureSkew, cfg.MaxFutureSkew, "the receiver's default, from one place")
	assert.Equal(t, 6*time.Hour, cfg.LocalRetention)
	assert.Equal(t, int64(8<<30), cfg.LocalMaxBytes)
	assert.Equal(t, 72*time.Hour, cfg.LocalMaxAge)
	assert.False(t, cfg.RetryConfig.Enabled, "a failed append is refused, not retried inside the pipeline")
	assert.Equal(t, 5*time.Second, cfg.TimeoutConfig.Timeout)
	assert.Equal(t, "/var/lib/edgetel/objstore", cfg.Directory)
	assert.False(t, cfg.QueueConfig.HasValue(), "no queue unless configured")
	assert.False(t, cfg.AddMetricSuffixes, "names stay as scraped")
	assert.False(t, cfg.HeadAPI.HasValue(), "the head API is off unless configured")
	y, err := cfg.bucketYAML()
	require.NoError(t, err)
	assert.Contains(t, string(y), "type: FILESYSTEM")
	assert.Contains(t, string(y), "/var/lib/edgetel/objstore/bucket")
}

func TestConfigCustom(t *testing.T) {
	cfg := loadConfig(t, "custom")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, map[string]string{"cluster": "edge-eu", "shard": "3"}, cfg.ExternalLabels)
	assert.Equal(t, 5*time.Minute, cfg.BlockDuration)
	assert.Equal(t, 2*time.Hour, cfg.OutOfOrderWindow)
	assert.Equal(t, 5*time.Minute, cfg.MaxFutureSkew)
	assert.True(t, cfg.ResourceToTelemetry.Enabled)
	assert.True(t, cfg.AddMetricSuffixes)
	assert.Equal(t, int64(2<<30), cfg.LocalMaxBytes)
	assert.Equal(t, 24*time.Hour, cfg.LocalMaxAge)
	assert.Equal(t, 10*time.Second, cfg.TimeoutConfig.Timeout)
	y, err := cfg.bucketYAML()
	require.NoError(t, err)
	assert.Contains(t, string(y), "type: S3")
	assert.Contains(t, string(y), "prefix: site-a")
	require.True(t, cfg.HeadAPI.HasValue())
	assert.Equal(t, "0.0.0.0:9095", cfg.HeadAPI.Get().NetAddr.Endpoint)
	assert.Equal(t, "/etc/edgetel/tls/tls.crt", cfg.HeadAPI.Get().TLS.Get().CertFile)
	assert.Equal(t, "bearertokenauth/head", cfg.HeadAPI.Get().Auth.Get().Config.AuthenticatorID.String())
	assert.Equal(t, 2, cfg.HeadAPI.Get().MaxQueriesPerRequest)
	assert.Equal(t, 1000000, cfg.HeadAPI.Get().MaxSamplesPerRequest)
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	err := confmap.Validate(loadConfig(t, "bad_bucket"))
	require.ErrorContains(t, err, `bucket: bucket config: type "SWIFT" is not supported`)

	err = confmap.Validate(loadConfig(t, "bad_label"))
	require.ErrorContains(t, err, `external_labels: "edge.site"="a": names must be valid`)

	err = confmap.Validate(loadConfig(t, "bad_head_api"))
	require.ErrorContains(t, err, "head_api.endpoint: must not be empty")

	err = confmap.Validate(loadConfig(t, "bad_values"))
	require.Error(t, err)
	for _, key := range []string{"directory: must", "external_labels:", "block_duration: must", "out_of_order_window: must",
		"local_retention:", "local_max_bytes:", "local_max_age:", "timeout:", "upload_interval:", "upload_retry.initial_interval:"} {
		assert.ErrorContains(t, err, key)
	}
}

// Values substituted from the environment reach objstore as plain values: the bucket section of
// examples/s3 (`insecure: ${env:S3_INSECURE}`) once reached it as the Collector's internal
// expanded-value record and failed to open.
func TestBucketSectionTakesEnvValues(t *testing.T) {
	t.Setenv("S3_INSECURE", "true")
	t.Setenv("S3_SECRET_KEY", "s3cr3t")
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`directory: /tmp/x
external_labels: {cluster: a}
bucket:
  type: S3
  config:
    bucket: edgetel
    endpoint: 127.0.0.1:7070
    insecure: ${env:S3_INSECURE}
    access_key: edgetel
    secret_key: ${env:S3_SECRET_KEY}
`), 0o600))
	res, err := confmap.NewResolver(confmap.ResolverSettings{
		URIs:              []string{"file:" + path},
		ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
	})
	require.NoError(t, err)
	conf, err := res.Resolve(context.Background())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, conf.Unmarshal(cfg))
	require.NoError(t, cfg.Validate())
	y, err := cfg.bucketYAML()
	require.NoError(t, err)
	assert.Contains(t, string(y), "insecure: true")
	assert.Contains(t, string(y), "secret_key: s3cr3t")
	bkt, err := bucket.NewFromYAML(context.Background(), y, nil)
	require.NoError(t, err, "objstore's S3 provider takes the section")
	require.NoError(t, bkt.Close())
}
