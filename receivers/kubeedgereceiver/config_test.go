package kubeedgereceiver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg, confmap.Validate(cfg)
}

func TestLoadConfig(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, createDefaultConfig(), cfg)

	cfg, err = loadConfig(t, "cloudcore")
	require.NoError(t, err)
	assert.Equal(t, 60*time.Second, cfg.CollectionInterval)
	assert.Equal(t, "edge", cfg.Job)
	assert.Equal(t, ShardConfig{Index: 2, Count: 3}, cfg.Shard)
	assert.Equal(t, []string{"/metrics/cadvisor", "/metrics/resource"}, cfg.Endpoints.paths())
	assert.Equal(t, AuthKubeConfig, cfg.Discovery.Kubernetes.AuthType)
	assert.Equal(t, "/etc/edgetel/kubeconfig", cfg.Discovery.Kubernetes.KubeConfig)
	assert.Equal(t, []string{"10.0.0.10:10003", "10.0.0.11:10003"}, cfg.Transport.Cloudcore.Endpoints)
	assert.Equal(t, "/etc/kubeedge/ca/streamCA.crt", cfg.Transport.Cloudcore.TLS.CAFile)
	// Maps merge with the default: site was removed with an empty value.
	assert.Equal(t, map[string]string{"region": "topology.kubernetes.io/region", "group": "apps.kubeedge.io/belonging-to", "site": ""}, cfg.NodeLabels)
	rc, err := cfg.relabelConfigs()
	require.NoError(t, err)
	require.Len(t, rc, 1)
	assert.Equal(t, "drop", string(rc[0].Action))

	for _, name := range []string{"apiserver", "direct", "file"} {
		_, err := loadConfig(t, name)
		assert.NoError(t, err, name)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for name, key := range map[string]string{
		"bad_shard":      "shard.index",
		"bad_relabel":    "metric_relabel_configs[0]",
		"bad_transport":  "transport.mode",
		"no_endpoints":   "endpoints",
		"reserved_label": "node_labels",
		"bad_timeout":    "scrape_timeout",
	} {
		_, err := loadConfig(t, name)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), key, name)
	}
}

func TestConfigStruct(t *testing.T) {
	require.NoError(t, componenttest.CheckConfigStruct(createDefaultConfig()))
}

func TestFactory(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	assert.Equal(t, metadata.MetricsStability, f.MetricsStability())
}

func TestShutdownWithoutStart(t *testing.T) {
	f := NewFactory()
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), f.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Shutdown(context.Background()))
}

func TestStartFailsClearlyOutsideACluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Transport.Mode = TransportDirect
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	err = r.Start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "discovery.kubernetes")
	require.NoError(t, r.Shutdown(context.Background()))
}
