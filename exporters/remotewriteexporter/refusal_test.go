package remotewriteexporter

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Answers that say nothing about the data keep it: a rotated credential (401/403), an ingress
// mid-rollout (404), overload (429) and server errors. Every request is refused a few times,
// then accepted: nothing is dropped.
func TestRefusalsKeepTheData(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
	}{
		{http.StatusUnauthorized, "unauthorized"},
		{http.StatusForbidden, "forbidden"},
		{http.StatusNotFound, "404 page not found"},
		{http.StatusTooManyRequests, "slow down"},
		{http.StatusBadGateway, "bad gateway"},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			sk := newSink(t)
			var refused atomic.Int64
			sk.respond = func(n int, _ *prompb.WriteRequest, w http.ResponseWriter) bool {
				if n < 4 {
					refused.Add(1)
					http.Error(w, tc.body, tc.status)
					return true
				}
				return false
			}
			tt := componenttest.NewTelemetry()
			t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
			core, logs := observer.New(zap.WarnLevel)
			cfg := testConfig(t, sk.url())
			cfg.Sending.Shards = 1
			e := startExporter(t, cfg, tt.NewTelemetrySettings(), zap.New(core))
			for i := range 3 {
				require.NoError(t, e.push(context.Background(), gaugeBatch(5, i, 1000)))
			}
			waitFor(t, 20*time.Second, "delivery after the refusals", func() bool { return sk.samples() == 15 })
			checkBatches(t, sk.snapshot(), 5, []int{0, 1, 2}, 1000)
			assert.Zero(t, e.tel.droppedTotal.Load(), "nothing dropped")
			assert.Equal(t, int64(4), e.tel.refusedTotal.Load())
			m, err := tt.GetMetric("otelcol_exporter_edgeremotewrite_requests_refused")
			require.NoError(t, err)
			sum := m.Data.(metricdata.Sum[int64])
			require.Len(t, sum.DataPoints, 1)
			code, _ := sum.DataPoints[0].Attributes.Value("status_code")
			assert.Equal(t, strconv.Itoa(tc.status), code.AsString())
			assert.Equal(t, int64(4), sum.DataPoints[0].Value)
			// Four refusals within the rate limit's period: one log line says so.
			assert.Len(t, logs.FilterFieldKey("failures_not_logged").All(), 1)
		})
	}
}

// A 413 splits the batch until the parts fit; a single series the remote end never takes is
// dropped and counted as too_large, and the rest of its batch is delivered.
func TestRequestTooLargeSplits(t *testing.T) {
	for _, proto := range []string{ProtocolV1, ProtocolV2} {
		t.Run("rw"+proto, func(t *testing.T) {
			sk := newSink(t)
			var answered413 atomic.Int64
			sk.respond = func(_ int, req *prompb.WriteRequest, w http.ResponseWriter) bool {
				if len(req.Timeseries) > 3 || hasSeries(req, gaugeKey(7)) {
					answered413.Add(1)
					http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
					return true
				}
				return false
			}
			cfg := testConfig(t, sk.url())
			cfg.ProtocolVersion = proto
			cfg.Sending.Shards = 1
			e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
			require.NoError(t, e.push(context.Background(), gaugeBatch(20, 0, 1000)))
			waitFor(t, 20*time.Second, "delivery of the parts", func() bool {
				return sk.samples() == 19 && e.tel.droppedTotal.Load() == 1
			})
			got := sk.snapshot()
			require.NotContains(t, got, gaugeKey(7))
			for s := range 20 {
				if s != 7 {
					assert.Equal(t, []prompb.Sample{{Timestamp: 1000, Value: float64(s)}}, got[gaugeKey(s)], s)
				}
			}
			assert.Positive(t, answered413.Load())
		})
	}
}

func hasSeries(req *prompb.WriteRequest, key string) bool {
	for _, ts := range req.Timeseries {
		if seriesKey(ts.Labels) == key {
			return true
		}
	}
	return false
}
