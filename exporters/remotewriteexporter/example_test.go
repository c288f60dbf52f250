package remotewriteexporter

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
)

// The edge-agent example's exporter section resolves (env defaults included) and validates.
func TestEdgeAgentExampleConfig(t *testing.T) {
	t.Setenv("NODE_NAME", "edge-1")
	t.Setenv("NODE_IP", "10.0.0.1")
	t.Setenv("REMOTE_WRITE_URL", "https://thanos-receive.example:19291/api/v1/receive")
	t.Setenv("TENANT", "site-7")
	path, err := filepath.Abs(filepath.Join("..", "..", "examples", "edge-agent", "config.yaml"))
	require.NoError(t, err)
	res, err := confmap.NewResolver(confmap.ResolverSettings{
		URIs:              []string{"file:" + path},
		ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory(), envprovider.NewFactory()},
		DefaultScheme:     "env",
	})
	require.NoError(t, err)
	conf, err := res.Resolve(context.Background())
	require.NoError(t, err)
	sub, err := conf.Sub("exporters::edgeremotewrite")
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "https://thanos-receive.example:19291/api/v1/receive", cfg.Endpoint)
	v, _ := cfg.Headers.Get("THANOS-TENANT")
	assert.Equal(t, configopaque.String("site-7"), v)
	assert.Equal(t, "/var/lib/edgetel/buffer", cfg.Buffer.Directory)
	assert.Equal(t, time.Hour, cfg.Buffer.maxAge(), "max_age follows the declared window")
	assert.Equal(t, map[string]string{"cluster": "edge"}, cfg.ExternalLabels)
}
