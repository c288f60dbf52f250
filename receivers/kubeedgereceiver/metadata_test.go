package kubeedgereceiver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/edgetel/edgetel/internal/testing/telemetrytest"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// TestStatusAndSelfMetricsMatchMetadata keeps internal/metadata and the self-metrics of both
// signals equal to metadata.yaml: names, descriptions, units and kinds.
func TestStatusAndSelfMetricsMatchMetadata(t *testing.T) {
	f := NewFactory()
	telemetrytest.CheckStatus(t, "metadata.yaml", telemetrytest.Status{Type: f.Type(),
		Stability: map[string]component.StabilityLevel{"metrics": f.MetricsStability(), "logs": f.LogsStability()}})

	rec := telemetrytest.NewRecorder()
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = rec.TelemetrySettings()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Logs.LifecycleEvents = true
	ctx := context.Background()
	_, err := f.CreateMetrics(ctx, set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	_, err = f.CreateLogs(ctx, set, cfg, consumertest.NewNop())
	require.NoError(t, err)
	telemetrytest.CheckMetrics(t, "metadata.yaml", rec.Instruments(metadata.ScopeName))
}
