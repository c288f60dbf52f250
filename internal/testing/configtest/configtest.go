// Package configtest loads a component's test configuration the way the Collector does, so
// every component's config tests share one loader.
package configtest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// Load unmarshals the section "<type>" or "<type>/<name>" of testdata/config.yaml over the
// factory's default config, and returns it with what confmap.Validate (the Collector's own
// validation pass) says about it.
func Load[C any](t testing.TB, f component.Factory, name string) (C, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(f.Type(), name).String())
	require.NoError(t, err)
	cfg := f.CreateDefaultConfig()
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg.(C), confmap.Validate(cfg)
}
