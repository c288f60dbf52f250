package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
)

// The distribution must carry every component the README promises; builder-config.yaml is the
// source, so a component dropped from it fails here.
func TestComponentsListsTheDistribution(t *testing.T) {
	factories, err := components()
	require.NoError(t, err)

	want := map[string][]string{
		"receivers":  {"kubeedge", "otlp", "prometheus"},
		"processors": {"edgenode", "batch", "memory_limiter"},
		"exporters":  {"edgeremotewrite", "objstore", "debug", "otlp_grpc", "otlp_http", "prometheus_remote_write"},
		"extensions": {"file_storage", "health_check", "pprof", "zpages", "basicauth", "bearertokenauth", "sigv4auth"},
	}
	have := map[string]map[component.Type]bool{
		"receivers": keys(factories.Receivers), "processors": keys(factories.Processors),
		"exporters": keys(factories.Exporters), "extensions": keys(factories.Extensions),
	}
	for kind, types := range want {
		for _, typ := range types {
			assert.Truef(t, have[kind][component.MustNewType(typ)], "%s: %s missing from the distribution", kind, typ)
		}
	}
}

func keys[F any](m map[component.Type]F) map[component.Type]bool {
	out := make(map[component.Type]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
