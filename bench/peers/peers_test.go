package peers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v2"
)

func params() Params {
	return Params{Interval: 15 * time.Second, Timeout: 10 * time.Second, TargetsFile: "/w/targets.json",
		FleetFile: "/w/fleet.json", SinkURL: "http://127.0.0.1:9/api/v1/write", DataDir: "/w/data",
		PprofAddr: "127.0.0.1:7", Transport: "cloudcore", CloudcoreAddr: "127.0.0.1:8", CAFile: "/w/ca.crt"}
}

func parse(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(s), &m), s)
	return m
}

func TestEveryPeerScrapesTheSameTargets(t *testing.T) {
	p := params()
	prom, err := Prometheus(p)
	require.NoError(t, err)
	vm, err := VMAgent(p)
	require.NoError(t, err)
	otel, err := Otelcol(p)
	require.NoError(t, err)

	pm := parse(t, prom)
	assert.Equal(t, p.SinkURL, pm["remote_write"].([]any)[0].(map[any]any)["url"])
	scrape := parse(t, vm)
	assert.Nil(t, scrape["remote_write"], "vmagent takes remote write from flags; strict parsing rejects unknown keys")
	assert.Equal(t, scrape["scrape_configs"], pm["scrape_configs"])
	om := parse(t, otel)
	cfg := om["receivers"].(map[any]any)["prometheus"].(map[any]any)["config"].(map[any]any)
	assert.Equal(t, scrape["scrape_configs"], cfg["scrape_configs"])
	assert.Contains(t, vm, `metrics_path: /metrics/cadvisor`)
	assert.Contains(t, vm, `scrape_interval: 15s`)
}

func TestEdgetelcolConfig(t *testing.T) {
	p := params()
	p.CloudcoreFirst, p.MaxBytes, p.TelemetryPort = "127.0.0.1:5", 1<<20, 8888
	s, err := Edgetelcol(p)
	require.NoError(t, err)
	m := parse(t, s)
	recv := m["receivers"].(map[any]any)["kubeedge"].(map[any]any)
	tr := recv["transport"].(map[any]any)
	assert.Equal(t, "cloudcore", tr["mode"])
	assert.Equal(t, []any{"127.0.0.1:5", "127.0.0.1:8"}, tr["cloudcore"].(map[any]any)["endpoints"])
	exp := m["exporters"].(map[any]any)["edgeremotewrite"].(map[any]any)
	assert.Equal(t, 1<<20, exp["buffer"].(map[any]any)["max_bytes"])
	assert.Contains(t, s, "port: 8888")

	p.Transport, p.MaxBytes, p.TelemetryPort = "direct", 0, 0
	s, err = Edgetelcol(p)
	require.NoError(t, err)
	assert.NotContains(t, s, "cloudcore:")
	assert.NotContains(t, s, "max_bytes")
	assert.Contains(t, s, "level: none")
}
