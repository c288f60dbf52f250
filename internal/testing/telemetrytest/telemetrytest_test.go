package telemetrytest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/metric"
	sigsyaml "sigs.k8s.io/yaml"
)

const sample = `
type: sample
telemetry:
  metrics:
    otelcol_receiver_sample_things:
      description: Things seen.
      unit: "{thing}"
      sum: {value_type: int, monotonic: true}
    otelcol_receiver_sample_level:
      description: The level.
      unit: "1"
      gauge: {value_type: double}
`

func TestRecorderAndDiff(t *testing.T) {
	var md metadataFile
	require.NoError(t, sigsyaml.Unmarshal([]byte(sample), &md))

	create := func(desc string, extra bool) map[string]Instrument {
		r := NewRecorder()
		m := r.TelemetrySettings().MeterProvider.Meter("sample")
		_, err := m.Int64Counter("otelcol_receiver_sample_things", metric.WithDescription(desc), metric.WithUnit("{thing}"))
		require.NoError(t, err)
		g, err := m.Float64ObservableGauge("otelcol_receiver_sample_level", metric.WithDescription("The level."), metric.WithUnit("1"))
		require.NoError(t, err)
		_, err = m.RegisterCallback(func(context.Context, metric.Observer) error { return nil }, g)
		require.NoError(t, err)
		if extra {
			_, err = m.Int64Gauge("otelcol_receiver_sample_extra")
			require.NoError(t, err)
		}
		return r.Instruments("sample")
	}
	assert.Empty(t, metricsDiff(md, create("Things seen.", false)))
	assert.Equal(t, []string{
		`otelcol_receiver_sample_things: metadata.yaml says {Kind:sum ValueType:int Description:Things seen. Unit:{thing}}, the component creates {Kind:sum ValueType:int Description:Things counted. Unit:{thing}}`,
	}, metricsDiff(md, create("Things counted.", false)), "a drifted description")
	assert.Equal(t, []string{"otelcol_receiver_sample_extra: created by the component, missing from metadata.yaml"},
		metricsDiff(md, create("Things seen.", true)))
	delete(md.Telemetry.Metrics, "otelcol_receiver_sample_level")
	md.Telemetry.Metrics["otelcol_receiver_sample_gone"] = md.Telemetry.Metrics["otelcol_receiver_sample_things"]
	assert.Equal(t, []string{
		"otelcol_receiver_sample_gone: in metadata.yaml, not created by the component",
		"otelcol_receiver_sample_level: created by the component, missing from metadata.yaml",
	}, metricsDiff(md, create("Things seen.", false)))
}
