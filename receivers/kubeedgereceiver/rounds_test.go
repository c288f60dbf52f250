package kubeedgereceiver

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// slowConsumer holds its first batch for hold: the pipeline pushing back.
type slowConsumer struct {
	consumertest.MetricsSink
	hold  time.Duration
	calls atomic.Int64
}

func (c *slowConsumer) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if c.calls.Add(1) == 1 {
		time.Sleep(c.hold)
	}
	return c.MetricsSink.ConsumeMetrics(ctx, md)
}

// roundCounts reads a rounds counter by reason.
func roundCounts(t *testing.T, tel *componenttest.Telemetry, name string) map[string]int64 {
	out := map[string]int64{}
	m, err := tel.GetMetric(name)
	if err != nil {
		return out
	}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		r, _ := dp.Attributes.Value(attribute.Key("reason"))
		out[r.AsString()] += dp.Value
	}
	return out
}

// A round that runs past the next one's time is never skipped silently: the rounds it made late
// or skipped are counted, with what took the time.
func TestOverrunRoundsAreCountedByReason(t *testing.T) {
	for _, tc := range []struct {
		reason string
		setup  func(cc *fakeCloudcore, cfg *Config) *slowConsumer
	}{
		{"pipeline", func(cc *fakeCloudcore, cfg *Config) *slowConsumer {
			cc.set("10.0.0.1:10351", "/metrics/cadvisor", seriesBody("container_thing", 10))
			// Held for 3.5 intervals: the round ends 2.5 intervals past the next one's time, so
			// two rounds are skipped and the one after them starts late.
			return &slowConsumer{hold: 7 * cfg.CollectionInterval / 2}
		}},
		{"slow_endpoints", func(cc *fakeCloudcore, cfg *Config) *slowConsumer {
			// Both endpoints answer just inside scrape_timeout, one after the other: a round
			// takes 1.5 intervals.
			cfg.Endpoints.Metrics.Enabled = true
			cc.setHandler("10.0.0.1:10351", func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(3 * cfg.CollectionInterval / 4)
				w.Write(seriesBody("container_thing", 10))
			})
			cfg.ScrapeTimeout = cfg.CollectionInterval
			return &slowConsumer{}
		}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			cc := newFakeCloudcore(t)
			cfg := testConfig(t, cc, StaticNode{Name: "edge-1", IP: "10.0.0.1", Port: 10351})
			next := tc.setup(cc, cfg)
			tel := componenttest.NewTelemetry()
			t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
			set := receivertest.NewNopSettings(metadata.Type)
			set.TelemetrySettings = tel.NewTelemetrySettings()
			r, err := newReceiver(set, cfg, next, testRegistry)
			require.NoError(t, err)
			require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
			t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
			require.Eventually(t, func() bool {
				late := roundCounts(t, tel, "otelcol_receiver_kubeedge_rounds_late")
				missed := roundCounts(t, tel, "otelcol_receiver_kubeedge_rounds_missed")
				return late[tc.reason] >= 1 && (tc.reason != "pipeline" || missed[tc.reason] >= 2)
			}, 20*time.Second, 20*time.Millisecond)
		})
	}
}
