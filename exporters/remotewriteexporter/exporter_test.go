package remotewriteexporter

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgetel/edgetel/exporters/remotewriteexporter/internal/metadata"
)

const testMetric = "rw_test_value"

// gaugeBatch is batch idx of a known sequence: nSeries gauges, value idx*1000+s at
// base+idx seconds.
func gaugeBatch(nSeries, idx int, baseMs int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "rwtest")
	rm.Resource().Attributes().PutStr("service.instance.id", "edge-1:10350")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(testMetric)
	dps := m.SetEmptyGauge().DataPoints()
	for s := 0; s < nSeries; s++ {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp((baseMs + int64(idx)*1000) * 1e6))
		dp.SetDoubleValue(float64(idx*1000 + s))
		dp.Attributes().PutStr("series", fmt.Sprintf("s%03d", s))
	}
	return md
}

func gaugeKey(s int) string {
	return fmt.Sprintf(`%s{cluster="c1",instance="edge-1:10350",job="rwtest",series="s%03d"}`, testMetric, s)
}

// checkBatches asserts got holds exactly batches [from, to) of gaugeBatch, each sample once,
// in timestamp order per series.
func checkBatches(t *testing.T, got map[string][]prompb.Sample, nSeries int, idx []int, baseMs int64) {
	t.Helper()
	require.Len(t, got, nSeries)
	for s := 0; s < nSeries; s++ {
		samples := got[gaugeKey(s)]
		require.Len(t, samples, len(idx), "series %d", s)
		for j, i := range idx {
			require.Equal(t, baseMs+int64(i)*1000, samples[j].Timestamp, "series %d sample %d", s, j)
			require.Equal(t, float64(i*1000+s), samples[j].Value, "series %d sample %d", s, j)
		}
	}
}

func seqInts(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestDeliversEverySampleInOrder(t *testing.T) {
	sk := newSink(t)
	cfg := testConfig(t, sk.url())
	cfg.Sending.MaxSamplesPerSend = 100
	cfg.Headers = configopaque.MapList{{Name: "X-Scope-OrgID", Value: "tenant-a"}, {Name: "THANOS-TENANT", Value: "tenant-a"}}
	cfg.BasicAuth = &BasicAuthConfig{Username: "edge", Password: "s3cret"}
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	const nSeries, nBatches, base = 37, 60, 1_700_000_000_000
	for i := 0; i < nBatches; i++ {
		require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, i, base)))
	}
	waitFor(t, 20*time.Second, "all samples", func() bool { return sk.samples() >= nSeries*nBatches })
	time.Sleep(50 * time.Millisecond) // anything extra would show up as a duplicate
	checkBatches(t, sk.snapshot(), nSeries, seqInts(0, nBatches), base)
	assert.Zero(t, sk.duplicates(), "without failures nothing is sent twice")
	waitFor(t, 5*time.Second, "the sent counter", func() bool { return e.tel.sentTotal.Load() == nSeries*nBatches })

	r := sk.request(0)
	assert.Equal(t, "tenant-a", r.Header.Get("X-Scope-OrgID"))
	assert.Equal(t, "tenant-a", r.Header.Get("THANOS-TENANT"))
	assert.Equal(t, "snappy", r.Header.Get("Content-Encoding"))
	assert.Equal(t, "0.1.0", r.Header.Get("X-Prometheus-Remote-Write-Version"))
	user, pw, ok := r.BasicAuth()
	assert.True(t, ok)
	assert.Equal(t, "edge", user)
	assert.Equal(t, "s3cret", pw)

	// Everything acknowledged: the buffer holds nothing pending.
	waitFor(t, 5*time.Second, "empty buffer", func() bool { p, _ := e.bufferBytes(); return p == 0 })
	assert.Zero(t, e.oldestAgeSeconds())
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	sk := newSink(t)
	var firstFail atomic.Int64
	var retryGap atomic.Int64
	sk.respond = func(n int, _ *prompb.WriteRequest, w http.ResponseWriter) bool {
		switch n {
		case 0:
			firstFail.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "1")
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return true
		case 1:
			retryGap.Store(time.Now().UnixNano() - firstFail.Load())
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return true
		case 2:
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		}
		return false
	}
	cfg := testConfig(t, sk.url())
	cfg.Sending.Shards = 1
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	require.NoError(t, e.push(context.Background(), gaugeBatch(5, 0, 1000)))
	waitFor(t, 20*time.Second, "delivery after retries", func() bool { return sk.samples() == 5 })
	assert.GreaterOrEqual(t, time.Duration(retryGap.Load()), 900*time.Millisecond, "Retry-After: 1 was honoured")
	// The sink stores before the exporter reads the answer.
	waitFor(t, 5*time.Second, "the sent counter", func() bool { return e.tel.sentTotal.Load() == 5 })
	assert.Zero(t, e.tel.droppedTotal.Load())
}

// A series the remote end refuses as bad data is dropped, counted and logged with the remote
// end's answer; the rest of its batch is delivered.
func TestRejectedSeriesIsDroppedCountedAndLogged(t *testing.T) {
	sk := newSink(t)
	sk.respond = func(_ int, req *prompb.WriteRequest, w http.ResponseWriter) bool {
		if hasSeries(req, gaugeKey(2)) {
			http.Error(w, "out of bounds: sample too old", http.StatusBadRequest)
			return true
		}
		return false
	}
	core, logs := observer.New(zap.ErrorLevel)
	cfg := testConfig(t, sk.url())
	cfg.Sending.Shards = 1
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), zap.New(core))
	require.NoError(t, e.push(context.Background(), gaugeBatch(4, 0, 1000)))
	waitFor(t, 10*time.Second, "the rejection", func() bool { return e.tel.droppedTotal.Load() == 1 && sk.samples() == 3 })
	entries := logs.FilterMessage("Remote end refused a single series, dropping its samples").All()
	require.Len(t, entries, 1)
	assert.Equal(t, "out of bounds: sample too old", entries[0].ContextMap()["reason"])
	assert.NotContains(t, sk.snapshot(), gaugeKey(2))
}

// Data accepted while the remote end is down survives a restart of the exporter and is
// delivered once, oldest first.
func TestBacklogSurvivesRestart(t *testing.T) {
	sk := newSink(t)
	var down atomic.Bool
	down.Store(true)
	sk.respond = func(_ int, _ *prompb.WriteRequest, w http.ResponseWriter) bool {
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return true
		}
		return false
	}
	cfg := testConfig(t, sk.url())
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	const nSeries, base = 10, 5_000_000
	for i := 0; i < 30; i++ {
		require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, i, base)))
	}
	require.NoError(t, e.shutdown(context.Background()))
	assert.Zero(t, sk.samples())

	e = startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	for i := 30; i < 40; i++ {
		require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, i, base)))
	}
	down.Store(false)
	waitFor(t, 20*time.Second, "backlog", func() bool { return sk.samples() >= nSeries*40 })
	time.Sleep(50 * time.Millisecond)
	checkBatches(t, sk.snapshot(), nSeries, seqInts(0, 40), base)
}

// A torn tail and a corrupt record found after a crash are cut off and counted; the rest is
// delivered.
func TestCorruptBufferIsRecoveredWithLossCounted(t *testing.T) {
	sk := newSink(t)
	var down atomic.Bool
	down.Store(true)
	sk.respond = func(_ int, _ *prompb.WriteRequest, w http.ResponseWriter) bool {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	cfg := testConfig(t, sk.url())
	cfg.Sending.Shards = 1
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	const nSeries, base = 8, 9_000_000
	for i := 0; i < 20; i++ {
		require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, i, base)))
	}
	require.NoError(t, e.shutdown(context.Background()))

	// Cut the last record in half, as a crash mid-write would.
	segs, err := filepath.Glob(filepath.Join(cfg.Buffer.Directory, "*.seg"))
	require.NoError(t, err)
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-20))

	down.Store(false)
	e = startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	waitFor(t, 20*time.Second, "the intact records", func() bool { return sk.samples() >= nSeries*19 })
	time.Sleep(50 * time.Millisecond)
	checkBatches(t, sk.snapshot(), nSeries, seqInts(0, 19), base)
	assert.EqualValues(t, nSeries, e.tel.droppedTotal.Load(), "the torn record's samples are counted as dropped")
}

func TestSelfMetrics(t *testing.T) {
	sk := newSink(t)
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	cfg := testConfig(t, sk.url())
	e := startExporter(t, cfg, tt.NewTelemetrySettings(), nil)
	require.NoError(t, e.push(context.Background(), gaugeBatch(6, 0, time.Now().UnixMilli())))
	waitFor(t, 10*time.Second, "delivery", func() bool { return sk.samples() == 6 })
	waitFor(t, 5*time.Second, "sent counter", func() bool {
		m, err := tt.GetMetric("otelcol_exporter_edgeremotewrite_samples_sent")
		if err != nil {
			return false
		}
		sum := m.Data.(metricdata.Sum[int64])
		return len(sum.DataPoints) == 1 && sum.DataPoints[0].Value == 6
	})
	for _, name := range []string{
		"otelcol_exporter_edgeremotewrite_samples_buffered", "otelcol_exporter_edgeremotewrite_send_duration_seconds",
		"otelcol_exporter_edgeremotewrite_buffer_bytes", "otelcol_exporter_edgeremotewrite_buffer_disk_bytes", "otelcol_exporter_edgeremotewrite_oldest_sample_age_seconds",
	} {
		_, err := tt.GetMetric(name)
		assert.NoError(t, err, name)
	}
	m, err := tt.GetMetric("otelcol_exporter_edgeremotewrite_buffer_max_bytes")
	require.NoError(t, err)
	gauge := m.Data.(metricdata.Gauge[int64])
	require.Len(t, gauge.DataPoints, 1)
	assert.Equal(t, cfg.Buffer.MaxBytes, gauge.DataPoints[0].Value)
}

// Real TLS on loopback, with the server's CA from a file and a bearer token file.
func TestTLSAndBearerToken(t *testing.T) {
	sk := newSink(t)
	srv := httptest.NewUnstartedServer(sk)
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	token := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(token, []byte("tok-1\n"), 0o600))

	cfg := testConfig(t, srv.URL+"/api/v1/write")
	cfg.TLS.CAFile = ca
	cfg.BearerTokenFile = token
	cfg.Sending.Shards = 1 // one request per push
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	require.NoError(t, e.push(context.Background(), gaugeBatch(3, 0, 1000)))
	waitFor(t, 10*time.Second, "delivery over TLS", func() bool { return sk.samples() == 3 })
	assert.Equal(t, "Bearer tok-1", sk.request(0).Header.Get("Authorization"))

	// A rotated token is used from the next request on.
	require.NoError(t, os.WriteFile(token, []byte("tok-2"), 0o600))
	require.NoError(t, e.push(context.Background(), gaugeBatch(3, 1, 1000)))
	waitFor(t, 10*time.Second, "second delivery", func() bool { return sk.samples() == 6 })
	assert.Equal(t, "Bearer tok-2", sk.request(1).Header.Get("Authorization"))
}

func TestUnsupportedPointsAreCounted(t *testing.T) {
	sk := newSink(t)
	e := startExporter(t, testConfig(t, sk.url()), componenttest.NewNopTelemetrySettings(), nil)
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("delta_requests")
	s := m.SetEmptySum()
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	s.DataPoints().AppendEmpty().SetIntValue(3)
	require.NoError(t, e.push(context.Background(), md))
	assert.EqualValues(t, 1, e.tel.droppedTotal.Load())
}

func TestFactoryLifecycle(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Endpoint = newSink(t).url()
	cfg.Buffer.Directory = t.TempDir()
	exp, err := f.CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, exp.ConsumeMetrics(context.Background(), gaugeBatch(2, 0, 1000)))
	require.NoError(t, exp.Shutdown(context.Background()))

	// Shutdown without Start is safe.
	exp, err = f.CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Shutdown(context.Background()))
}

func TestBufferDirectoryInUse(t *testing.T) {
	cfg := testConfig(t, newSink(t).url())
	startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	e := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	err := e.start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.ErrorContains(t, err, "in use")
	require.NoError(t, e.shutdown(context.Background()))
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	assert.Equal(t, 7*time.Second, parseRetryAfter("7", now))
	assert.Equal(t, 30*time.Second, parseRetryAfter(now.Add(30*time.Second).Format(http.TimeFormat), now))
	assert.Zero(t, parseRetryAfter("", now))
	assert.Zero(t, parseRetryAfter("soon", now))
	assert.Zero(t, parseRetryAfter(strconv.Itoa(-3), now))
}

// A counter scraped without _total reaches the remote end under its scraped name; with
// add_metric_suffixes it gets the suffix, as contrib's default does.
func TestCounterNamesAsScraped(t *testing.T) {
	for _, tc := range []struct {
		suffixes bool
		want     string
	}{{false, "container_memory_failcnt"}, {true, "container_memory_failcnt_total"}} {
		sk := newSink(t)
		cfg := testConfig(t, sk.url())
		cfg.AddMetricSuffixes = tc.suffixes
		e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "kubeedge")
		rm.Resource().Attributes().PutStr("service.instance.id", "edge-1")
		m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("container_memory_failcnt")
		m.SetEmptySum().SetIsMonotonic(true)
		m.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := m.Sum().DataPoints().AppendEmpty()
		dp.SetIntValue(3)
		dp.SetTimestamp(pcommon.Timestamp(5000 * 1e6))
		require.NoError(t, e.push(context.Background(), md))
		waitFor(t, 10*time.Second, "delivery", func() bool { return sk.samples() == 1 })
		assert.Equal(t, map[string][]prompb.Sample{
			tc.want + `{cluster="c1",instance="edge-1",job="kubeedge"}`: {{Timestamp: 5000, Value: 3}},
		}, sk.snapshot())
	}
}

// A 415 (protocol version not accepted) keeps the data for a fixed configuration instead of
// dropping it; and records keep the protocol they were written with across a
// protocol_version change.
func TestUnsupportedMediaTypeIsRetriedAndProtocolSurvivesChange(t *testing.T) {
	sk := newSink(t)
	sk.respond = func(n int, _ *prompb.WriteRequest, w http.ResponseWriter) bool {
		if n == 0 {
			http.Error(w, "unsupported", http.StatusUnsupportedMediaType)
			return true
		}
		return false
	}
	sk.down.Store(true)
	cfg := testConfig(t, sk.url())
	cfg.Sending.Shards = 1
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	require.NoError(t, e.push(context.Background(), gaugeBatch(3, 0, 1000)))
	require.NoError(t, e.shutdown(context.Background()))

	cfg.ProtocolVersion = ProtocolV2
	sk.down.Store(false)
	e = startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	waitFor(t, 10*time.Second, "delivery after the 415", func() bool { return sk.samples() == 3 })
	assert.Equal(t, "0.1.0", sk.request(1).Header.Get("X-Prometheus-Remote-Write-Version"), "an RW 1.0 record is sent as RW 1.0")
	assert.Zero(t, e.tel.droppedTotal.Load())
}

// Shutdown lets a request already on the wire finish and be acknowledged, so a restart does
// not send it again.
func TestShutdownFinishesRequestInFlight(t *testing.T) {
	sk := newSink(t)
	entered := make(chan struct{}, 16)
	sk.respond = func(int, *prompb.WriteRequest, http.ResponseWriter) bool {
		entered <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		return false
	}
	cfg := testConfig(t, sk.url())
	cfg.Sending.Shards = 1
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	require.NoError(t, e.push(context.Background(), gaugeBatch(4, 0, 1000)))
	<-entered
	require.NoError(t, e.shutdown(context.Background()))
	assert.EqualValues(t, 4, e.tel.sentTotal.Load(), "the request in flight was acknowledged")

	e = startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	require.NoError(t, e.push(context.Background(), gaugeBatch(4, 1, 1000)))
	waitFor(t, 10*time.Second, "the next batch", func() bool { return sk.samples() == 8 })
	time.Sleep(100 * time.Millisecond)
	assert.Zero(t, sk.duplicates(), "nothing was sent again after the restart")
	checkBatches(t, sk.snapshot(), 4, []int{0, 1}, 1000)
}
