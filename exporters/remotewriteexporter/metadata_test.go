package remotewriteexporter

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/edgetel/edgetel/exporters/remotewriteexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/testing/telemetrytest"
)

// TestStatusAndSelfMetricsMatchMetadata keeps internal/metadata and the self-metrics equal to
// metadata.yaml: names, descriptions, units and kinds. The exporter creates them in Start.
func TestStatusAndSelfMetricsMatchMetadata(t *testing.T) {
	f := NewFactory()
	telemetrytest.CheckStatus(t, "metadata.yaml", telemetrytest.Status{Type: f.Type(),
		Stability: map[string]component.StabilityLevel{"metrics": f.MetricsStability()}})

	rec := telemetrytest.NewRecorder()
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = rec.TelemetrySettings()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Endpoint = "http://127.0.0.1:1/api/v1/write"
	cfg.Buffer.Directory = t.TempDir()
	ctx := context.Background()
	e, err := f.CreateMetrics(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, e.Shutdown(ctx))
	telemetrytest.CheckMetrics(t, "metadata.yaml", rec.Instruments(metadata.ScopeName))
}
