package objstoreexporter

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/edgetel/edgetel/exporters/objstoreexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/testing/telemetrytest"
)

// TestStatusAndSelfMetricsMatchMetadata keeps internal/metadata and the self-metrics equal to
// metadata.yaml: names, descriptions, units and kinds.
func TestStatusAndSelfMetricsMatchMetadata(t *testing.T) {
	f := NewFactory()
	telemetrytest.CheckStatus(t, "metadata.yaml", telemetrytest.Status{Type: f.Type(),
		Stability: map[string]component.StabilityLevel{"metrics": f.MetricsStability()}})

	rec := telemetrytest.NewRecorder()
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = rec.TelemetrySettings()
	_, err := f.CreateMetrics(context.Background(), set, f.CreateDefaultConfig())
	require.NoError(t, err)
	telemetrytest.CheckMetrics(t, "metadata.yaml", rec.Instruments(metadata.ScopeName))
}
