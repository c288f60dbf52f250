package edgenodeprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/edgetel/edgetel/internal/testing/telemetrytest"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/metadata"
)

// TestStatusAndSelfMetricsMatchMetadata keeps internal/metadata and the self-metrics equal to
// metadata.yaml: names, descriptions, units and kinds.
func TestStatusAndSelfMetricsMatchMetadata(t *testing.T) {
	f := NewFactory()
	telemetrytest.CheckStatus(t, "metadata.yaml", telemetrytest.Status{Type: f.Type(),
		Stability: map[string]component.StabilityLevel{
			"metrics": f.MetricsStability(), "logs": f.LogsStability(), "traces": f.TracesStability()}})

	rec := telemetrytest.NewRecorder()
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = rec.TelemetrySettings()
	_, err := f.CreateMetrics(context.Background(), set, f.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	telemetrytest.CheckMetrics(t, "metadata.yaml", rec.Instruments(metadata.ScopeName))
}
