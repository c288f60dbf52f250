package remotewriteexporter

// The conditions of the Prometheus remote-write sender compliance suite
// (prometheus/compliance remotewrite/sender: retry_test.go, backoff_test.go, samples_test.go,
// metadata_test.go, edge_cases_test.go), reproduced against the exporter on loopback.

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// recorder is a remote-write endpoint that keeps every request as it came (its arrival time,
// a hash of its body, its series) and answers what answer says.
type recorder struct {
	t        *testing.T
	url      string
	mu       sync.Mutex
	reqs     []recorded
	inFlight atomic.Int32
	maxIn    atomic.Int32 // most requests on the wire at once
	noStats  atomic.Bool  // answer RW 2.0 without the written-samples header, as a 1.0 receiver does
	answer   func(rec recorded) int
}

type recorded struct {
	at     time.Time // the request arrived
	done   time.Time // its answer was written
	body   [32]byte
	v1     prompb.WriteRequest
	v2     writev2.Request
	isV2   bool
	status int
}

func newRecorder(t *testing.T, answer func(recorded) int) *recorder {
	r := &recorder{t: t, answer: answer}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.url = "http://" + ln.Addr().String() + "/api/v1/write"
	return r
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	n := r.inFlight.Add(1)
	defer r.inFlight.Add(-1)
	for {
		m := r.maxIn.Load()
		if n <= m || r.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	rec := recorded{at: time.Now()}
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec.body = sha256.Sum256(body)
	raw, err := snappy.Decode(nil, body)
	if err == nil {
		rec.isV2 = hr.Header.Get("X-Prometheus-Remote-Write-Version") == "2.0.0"
		if rec.isV2 {
			err = rec.v2.Unmarshal(raw)
		} else {
			err = rec.v1.Unmarshal(raw)
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec.status = http.StatusNoContent
	if r.answer != nil {
		rec.status = r.answer(rec)
	}
	rec.done = time.Now()
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	if rec.status/100 != 2 {
		http.Error(w, "refused: "+strconv.Itoa(rec.status), rec.status)
		return
	}
	if rec.isV2 && !r.noStats.Load() {
		n := 0
		for _, ss := range rec.series() {
			n += len(ss)
		}
		w.Header().Set(headerSamplesWritten, strconv.Itoa(n))
	}
	w.WriteHeader(rec.status)
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// rawSample is a sample as it was on the wire: the value's bits, not its float (NaN, -0).
type rawSample struct {
	t    int64
	bits uint64
}

// delivered returns, per series, the samples of the requests answered 2xx, in arrival order.
func (r *recorder) delivered() map[string][]rawSample {
	out := map[string][]rawSample{}
	for _, rec := range r.requests() {
		if rec.status/100 != 2 {
			continue
		}
		for key, ss := range rec.series() {
			out[key] = append(out[key], ss...)
		}
	}
	return out
}

func (rec recorded) series() map[string][]rawSample {
	out := map[string][]rawSample{}
	if !rec.isV2 {
		for _, ts := range rec.v1.Timeseries {
			k := seriesKey(ts.Labels)
			for _, s := range ts.Samples {
				out[k] = append(out[k], rawSample{s.Timestamp, math.Float64bits(s.Value)})
			}
		}
		return out
	}
	for _, ts := range rec.v2.Timeseries {
		var ls []prompb.Label
		for i := 0; i+1 < len(ts.LabelsRefs); i += 2 {
			ls = append(ls, prompb.Label{Name: rec.v2.Symbols[ts.LabelsRefs[i]], Value: rec.v2.Symbols[ts.LabelsRefs[i+1]]})
		}
		k := seriesKey(ls)
		for _, s := range ts.Samples {
			out[k] = append(out[k], rawSample{s.Timestamp, math.Float64bits(s.Value)})
		}
	}
	return out
}

// no_retry_on_400, no_retry_on_413: a request the remote end refuses as bad or too large is
// never sent again. A batch of one series is sent once and dropped, counted by reason.
func TestNoResendOfARefusedRequest(t *testing.T) {
	for _, tc := range []struct {
		status int
		reason string
	}{
		{http.StatusBadRequest, reasonRejected},
		{http.StatusConflict, reasonRejected},
		{http.StatusUnprocessableEntity, reasonRejected},
		{http.StatusRequestEntityTooLarge, reasonTooLarge},
	} {
		for _, proto := range []string{ProtocolV1, ProtocolV2} {
			t.Run(fmt.Sprint(tc.status, "/rw", proto), func(t *testing.T) {
				rc := newRecorder(t, func(recorded) int { return tc.status })
				tt := componenttest.NewTelemetry()
				t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
				cfg := testConfig(t, rc.url)
				cfg.ProtocolVersion = proto
				e := startExporter(t, cfg, tt.NewTelemetrySettings(), nil)
				require.NoError(t, e.push(context.Background(), gaugeBatch(1, 0, 1000)))
				waitFor(t, 10*time.Second, "the drop", func() bool { return e.tel.droppedTotal.Load() == 1 })
				// Ten times the first backoff: a resend would have come by now.
				time.Sleep(10 * cfg.RetryConfig.InitialInterval)
				assert.Len(t, rc.requests(), 1, "one request, never sent again")
				assert.Zero(t, e.tel.refusedTotal.Load())
				assertDropped(t, tt, tc.reason, 1)
			})
		}
	}
}

func assertDropped(t *testing.T, tt *componenttest.Telemetry, reason string, want int64) {
	t.Helper()
	m, err := tt.GetMetric("otelcol_exporter_edgeremotewrite_samples_dropped")
	require.NoError(t, err)
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if r, _ := dp.Attributes.Value("reason"); r.AsString() == reason {
			assert.Equal(t, want, dp.Value)
			return
		}
	}
	t.Fatalf("no samples_dropped{reason=%q}", reason)
}

// A bad-data answer (400, and Thanos Receive's 409) splits the batch so that only the series
// the remote end refuses are dropped: the rest of the batch is delivered, no request body is
// sent twice, and what is dropped is counted as rejected. The answer's text does not matter:
// "invalid token" from a proxy is bad data like any 400 (RW 2.0: no retry on 4xx but 429, and
// the sender does not decide by the text).
func TestBadDataIsolatesTheRefusedSeries(t *testing.T) {
	bad := map[string]bool{gaugeKey(3): true, gaugeKey(17): true}
	for _, status := range []int{http.StatusBadRequest, http.StatusConflict} {
		for _, proto := range []string{ProtocolV1, ProtocolV2} {
			t.Run(fmt.Sprint(status, "/rw", proto), func(t *testing.T) {
				rc := newRecorder(t, func(rec recorded) int {
					for k := range rec.series() {
						if bad[k] {
							return status
						}
					}
					return http.StatusNoContent
				})
				tt := componenttest.NewTelemetry()
				t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
				cfg := testConfig(t, rc.url)
				cfg.ProtocolVersion = proto
				cfg.Sending.Shards = 1
				e := startExporter(t, cfg, tt.NewTelemetrySettings(), nil)
				const nSeries = 40
				require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, 0, 1000)))
				waitFor(t, 10*time.Second, "the split", func() bool {
					return e.tel.droppedTotal.Load() == 2 && e.tel.sentTotal.Load() == nSeries-2
				})
				got := rc.delivered()
				require.Len(t, got, nSeries-2)
				for s := range nSeries {
					if !bad[gaugeKey(s)] {
						assert.Equal(t, []rawSample{{1000, math.Float64bits(float64(s))}}, got[gaugeKey(s)])
					}
				}
				bodies := map[[32]byte]int{}
				for _, rec := range rc.requests() {
					bodies[rec.body]++
				}
				for _, n := range bodies {
					assert.Equal(t, 1, n, "a request body sent twice")
				}
				assert.LessOrEqual(t, len(rc.requests()), 1+4*6, "bisection: about 2·log2(40) requests per refused series")
				assertDropped(t, tt, reasonRejected, 2)
			})
		}
	}
}

// no_retry_on_401, no_retry_on_404 (and 403): the data stays in the buffer, and instead of the
// retry rate one probe goes out per max_interval, whatever the number of shards, until the
// remote end takes requests again; then everything is delivered. sending_held says so.
func TestRefusalHoldsTheDataAndProbesOncePerMaxInterval(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var refusing atomic.Bool
			refusing.Store(true)
			rc := newRecorder(t, func(recorded) int {
				if refusing.Load() {
					return status
				}
				return http.StatusNoContent
			})
			tt := componenttest.NewTelemetry()
			t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
			cfg := testConfig(t, rc.url)
			cfg.Sending.Shards = 8
			cfg.RetryConfig.MaxInterval = 400 * time.Millisecond
			e := startExporter(t, cfg, tt.NewTelemetrySettings(), nil)
			const nSeries, nBatches = 50, 10
			for i := range nBatches {
				require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, i, 1000)))
			}
			waitFor(t, 10*time.Second, "sending held", e.sendingHeld)
			assertGauge(t, tt, "otelcol_exporter_edgeremotewrite_sending_held", 1)
			time.Sleep(2 * time.Second)
			refused := rc.requests()
			refusing.Store(false)
			// The shards' first requests may all be on the wire before the first refusal: after
			// that, one probe per max_interval.
			var probes []time.Time
			for _, rec := range refused[min(len(refused), cfg.Sending.Shards):] {
				probes = append(probes, rec.at)
			}
			assert.LessOrEqual(t, len(probes), 6, "2 s at one probe per 400 ms")
			for i := 1; i < len(probes); i++ {
				assert.GreaterOrEqual(t, probes[i].Sub(probes[i-1]), 350*time.Millisecond, "probe %d", i)
			}
			waitFor(t, 10*time.Second, "delivery", func() bool { return e.tel.sentTotal.Load() == nSeries*nBatches })
			assert.Zero(t, e.tel.droppedTotal.Load())
			assert.False(t, e.sendingHeld())
			assertGauge(t, tt, "otelcol_exporter_edgeremotewrite_sending_held", 0)
			checkRaw(t, rc.delivered(), nSeries, nBatches)
		})
	}
}

func assertGauge(t *testing.T, tt *componenttest.Telemetry, name string, want int64) {
	t.Helper()
	m, err := tt.GetMetric(name)
	require.NoError(t, err)
	dps := m.Data.(metricdata.Gauge[int64]).DataPoints
	require.Len(t, dps, 1)
	assert.Equal(t, want, dps[0].Value, name)
}

// checkRaw asserts got holds every sample of gaugeBatch batches [0, nBatches) once, in order.
func checkRaw(t *testing.T, got map[string][]rawSample, nSeries, nBatches int) {
	t.Helper()
	require.Len(t, got, nSeries)
	for s := range nSeries {
		var want []rawSample
		for i := range nBatches {
			want = append(want, rawSample{1000 + int64(i)*1000, math.Float64bits(float64(i*1000 + s))})
		}
		require.Equal(t, want, got[gaugeKey(s)], "series %d", s)
	}
}

// exponential_backoff_on_retries, backoff_required: with the default shards (and more), the
// remote end failing sees one request at a time, spaced by a backoff that grows.
func TestBackoffAcrossShards(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	rc := newRecorder(t, func(recorded) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	cfg := testConfig(t, rc.url)
	cfg.Sending.Shards = 8
	cfg.RetryConfig.InitialInterval = 20 * time.Millisecond
	cfg.RetryConfig.MaxInterval = 2 * time.Second
	cfg.RetryConfig.RandomizationFactor = 0
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	const nSeries, nBatches = 64, 5
	for i := range nBatches {
		require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, i, 1000)))
	}
	// Retries are the requests whose body was seen before: each shard's first request goes out
	// before it knows of any failure, and a retry sends the same body again.
	retries := func() []time.Time {
		reqs := rc.requests()
		sort.Slice(reqs, func(i, j int) bool { return reqs[i].at.Before(reqs[j].at) })
		seen := map[[32]byte]bool{}
		var at []time.Time
		for _, r := range reqs {
			if r.status == http.StatusServiceUnavailable && seen[r.body] {
				at = append(at, r.at)
			}
			seen[r.body] = true
		}
		return at
	}
	waitFor(t, 30*time.Second, "seven retries", func() bool { return len(retries()) >= 7 })
	failing.Store(false)
	waitFor(t, 10*time.Second, "delivery", func() bool { return e.tel.sentTotal.Load() == nSeries*nBatches })
	// The retries, whichever shard sent them, are spaced by a backoff that grows.
	at := retries()
	var intervals []time.Duration
	for i := 1; i < len(at); i++ {
		intervals = append(intervals, at[i].Sub(at[i-1]))
	}
	for i, d := range intervals {
		assert.GreaterOrEqual(t, d, 15*time.Millisecond, "retry %d: not spaced by the backoff: %v", i+1, intervals)
	}
	assert.GreaterOrEqual(t, intervals[len(intervals)-1], 4*cfg.RetryConfig.InitialInterval, "the backoff grows: %v", intervals)
	assert.LessOrEqual(t, int(rc.maxIn.Load()), cfg.Sending.Shards, "never more requests at once than shards")
	checkRaw(t, rc.delivered(), nSeries, nBatches)
}

// Sample encoding: every value and timestamp arrives bit for bit, whatever the shard and
// request it travels in (NaN payloads, ±Inf, the smallest subnormal, integers past 2^53,
// timestamps before 1970), each series in push order, the staleness marker as Prometheus' own
// stale NaN. (-0 is left out: proto3 omits a zero double, so -0 arrives as 0 from every
// sender, Prometheus' own gogo-generated encoder included.)
func TestValuesAndTimestampsExactAcrossShards(t *testing.T) {
	values := []float64{0, 1, -1, math.Inf(1), math.Inf(-1), math.NaN(),
		math.MaxFloat64, math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 1 << 53, 1<<53 + 2,
		0.1, 1e-300, -123456.789, math.Float64frombits(0x7ff8000000000123)}
	times := []int64{1, 1000, 1_700_000_000_123, -1_000, math.MaxInt64 / 1_000_000}
	for _, proto := range []string{ProtocolV1, ProtocolV2} {
		t.Run("rw"+proto, func(t *testing.T) {
			rc := newRecorder(t, nil)
			cfg := testConfig(t, rc.url)
			cfg.ProtocolVersion = proto
			e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
			want := map[string][]rawSample{}
			for ti, ts := range times {
				md := pmetric.NewMetrics()
				rm := md.ResourceMetrics().AppendEmpty()
				rm.Resource().Attributes().PutStr("service.name", "rwtest")
				m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
				m.SetName("exact")
				dps := m.SetEmptyGauge().DataPoints()
				for vi, v := range values {
					dp := dps.AppendEmpty()
					dp.SetTimestamp(pcommon.Timestamp(ts * 1e6))
					dp.SetDoubleValue(v)
					dp.Attributes().PutStr("v", strconv.Itoa(vi))
					bits := math.Float64bits(v)
					if ti == len(times)-1 && vi == 2 {
						dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
						bits = value.StaleNaN
					}
					k := fmt.Sprintf(`exact{cluster="c1",job="rwtest",v="%d"}`, vi)
					want[k] = append(want[k], rawSample{ts, bits})
				}
				require.NoError(t, e.push(context.Background(), md))
			}
			waitFor(t, 10*time.Second, "delivery", func() bool {
				return e.tel.sentTotal.Load() == int64(len(values)*len(times))
			})
			got := rc.delivered()
			// Timestamps go in in push order, which is not time order: per series, the order on
			// the wire is the order of the pushes.
			assert.Equal(t, want, got)
		})
	}
}

// many_timeseries, high_cardinality (with valid values, see docs): one scrape of many series is
// delivered whole, each sample once, over several requests and shards.
func TestManySeriesInOneScrape(t *testing.T) {
	for _, shards := range []int{1, 4} {
		t.Run(fmt.Sprint("shards=", shards), func(t *testing.T) {
			rc := newRecorder(t, nil)
			cfg := testConfig(t, rc.url)
			cfg.Sending.Shards = shards
			e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
			const nSeries = 20000
			require.NoError(t, e.push(context.Background(), gaugeBatchWide(nSeries, 0, 1000)))
			waitFor(t, 30*time.Second, "delivery", func() bool { return e.tel.sentTotal.Load() == nSeries })
			got := rc.delivered()
			require.Len(t, got, nSeries)
			for s := range nSeries {
				require.Equal(t, []rawSample{{1000, math.Float64bits(float64(s))}},
					got[fmt.Sprintf(`%s{cluster="c1",instance="edge-1:10350",job="rwtest",series="s%05d"}`, testMetric, s)], s)
			}
			for _, rec := range rc.requests() {
				n := 0
				for _, ss := range rec.series() {
					n += len(ss)
				}
				assert.LessOrEqual(t, n, cfg.Sending.MaxSamplesPerSend)
			}
		})
	}
}

func gaugeBatchWide(nSeries, idx int, baseMs int64) pmetric.Metrics {
	md := gaugeBatch(nSeries, idx, baseMs)
	dps := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints()
	for s := 0; s < dps.Len(); s++ {
		dps.At(s).Attributes().PutStr("series", fmt.Sprintf("s%05d", s))
	}
	return md
}

// Metadata with its samples (metadata_test.go): over RW 2.0 every series carries its family's
// type, help and unit, a histogram's and a summary's series the family's type, and cumulative
// series their start time.
func TestMetadataTravelsWithTheSamples(t *testing.T) {
	rc := newRecorder(t, nil)
	cfg := testConfig(t, rc.url)
	cfg.ProtocolVersion = ProtocolV2
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "rwtest")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	const tsMs, startMs = 1_700_000_000_000, 1_699_999_000_000
	stamp := func(dp interface {
		SetTimestamp(pcommon.Timestamp)
		SetStartTimestamp(pcommon.Timestamp)
	}) {
		dp.SetTimestamp(pcommon.Timestamp(tsMs * 1e6))
		dp.SetStartTimestamp(pcommon.Timestamp(startMs * 1e6))
	}
	g := ms.AppendEmpty()
	g.SetName("temperature_celsius")
	g.SetDescription("Temperature of the room.")
	g.SetUnit("celsius")
	stamp(g.SetEmptyGauge().DataPoints().AppendEmpty())
	c := ms.AppendEmpty()
	c.SetName("http_requests_total")
	c.SetDescription("Total HTTP requests, by code.")
	sum := c.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	stamp(sum.DataPoints().AppendEmpty())
	h := ms.AppendEmpty()
	h.SetName("request_duration_seconds")
	h.SetDescription("Request latency.")
	h.SetUnit("seconds")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hdp := hist.DataPoints().AppendEmpty()
	stamp(hdp)
	hdp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hdp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	hdp.SetCount(6)
	hdp.SetSum(7.5)
	s := ms.AppendEmpty()
	s.SetName("rpc_latency_seconds")
	s.SetDescription("RPC latency quantiles.")
	sdp := s.SetEmptySummary().DataPoints().AppendEmpty()
	stamp(sdp)
	q := sdp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(0.2)
	sdp.SetCount(4)
	sdp.SetSum(1)
	require.NoError(t, e.push(context.Background(), md))
	waitFor(t, 10*time.Second, "delivery", func() bool { return e.tel.sentTotal.Load() == 1+1+5+3 })

	type meta struct {
		typ        writev2.Metadata_MetricType
		help, unit string
		start      int64
	}
	want := map[string]meta{
		"temperature_celsius":             {writev2.Metadata_METRIC_TYPE_GAUGE, "Temperature of the room.", "celsius", 0},
		"http_requests_total":             {writev2.Metadata_METRIC_TYPE_COUNTER, "Total HTTP requests, by code.", "", startMs},
		"request_duration_seconds_bucket": {writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Request latency.", "seconds", startMs},
		"request_duration_seconds_sum":    {writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Request latency.", "seconds", startMs},
		"request_duration_seconds_count":  {writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Request latency.", "seconds", startMs},
		"rpc_latency_seconds":             {writev2.Metadata_METRIC_TYPE_SUMMARY, "RPC latency quantiles.", "", startMs},
		"rpc_latency_seconds_sum":         {writev2.Metadata_METRIC_TYPE_SUMMARY, "RPC latency quantiles.", "", startMs},
		"rpc_latency_seconds_count":       {writev2.Metadata_METRIC_TYPE_SUMMARY, "RPC latency quantiles.", "", startMs},
	}
	seen := 0
	for _, rec := range rc.requests() {
		syms := rec.v2.Symbols
		require.NotEmpty(t, syms)
		assert.Empty(t, syms[0], "symbol 0 is the empty string")
		for _, ts := range rec.v2.Timeseries {
			var name string
			for i := 0; i+1 < len(ts.LabelsRefs); i += 2 {
				if syms[ts.LabelsRefs[i]] == "__name__" {
					name = syms[ts.LabelsRefs[i+1]]
				}
			}
			w, ok := want[name]
			require.True(t, ok, name)
			require.Less(t, int(ts.Metadata.HelpRef), len(syms))
			require.Less(t, int(ts.Metadata.UnitRef), len(syms))
			got := meta{ts.Metadata.Type, syms[ts.Metadata.HelpRef], syms[ts.Metadata.UnitRef], ts.Samples[0].StartTimestamp}
			assert.Equal(t, w, got, name)
			assert.Equal(t, int64(tsMs), ts.Samples[0].Timestamp)
			seen++
		}
	}
	assert.Equal(t, 10, seen)
}

// write_relabel_configs apply to every series, external labels included, before it is buffered:
// a dropped series is counted (reason relabeled) and never sent; a rewritten label arrives
// rewritten. Invalid configs are refused by Validate, naming the entry.
func TestWriteRelabelConfigs(t *testing.T) {
	for _, proto := range []string{ProtocolV1, ProtocolV2} {
		t.Run("rw"+proto, func(t *testing.T) {
			rc := newRecorder(t, nil)
			tt := componenttest.NewTelemetry()
			t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
			cfg := testConfig(t, rc.url)
			cfg.ProtocolVersion = proto
			cfg.WriteRelabelConfigs = []map[string]any{
				{"source_labels": []string{"series"}, "regex": "s00[12]", "action": "drop"},
				{"source_labels": []string{"cluster"}, "target_label": "site", "replacement": "site-$1"},
				{"regex": "instance", "action": "labeldrop"},
			}
			e := startExporter(t, cfg, tt.NewTelemetrySettings(), nil)
			require.NoError(t, e.push(context.Background(), gaugeBatch(5, 0, 1000)))
			waitFor(t, 10*time.Second, "delivery", func() bool { return e.tel.sentTotal.Load() == 3 })
			want := map[string][]rawSample{}
			for _, s := range []int{0, 3, 4} {
				k := fmt.Sprintf(`%s{cluster="c1",job="rwtest",series="s%03d",site="site-c1"}`, testMetric, s)
				want[k] = []rawSample{{1000, math.Float64bits(float64(s))}}
			}
			assert.Equal(t, want, rc.delivered())
			assertDropped(t, tt, reasonRelabeled, 2)
		})
	}
	cfg := testConfig(t, "http://127.0.0.1:1/api/v1/write")
	cfg.WriteRelabelConfigs = []map[string]any{{"action": "keep"}, {"action": "nonsense"}}
	assert.ErrorContains(t, cfg.Validate(), "write_relabel_configs[1]")
}

// A 2xx to an RW 2.0 request without X-Prometheus-Remote-Write-Samples-Written comes from a
// receiver that read it as RW 1.0 and stored nothing (Thanos Receive v0.42): not a delivery. The
// data is held and probed like a 415 until the remote end answers as RW 2.0 requires.
func TestRW2WithoutWrittenStatsIsNotADelivery(t *testing.T) {
	rc := newRecorder(t, nil)
	rc.noStats.Store(true)
	cfg := testConfig(t, rc.url)
	cfg.ProtocolVersion = ProtocolV2
	cfg.RetryConfig.MaxInterval = 300 * time.Millisecond
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	require.NoError(t, e.push(context.Background(), gaugeBatch(5, 0, 1000)))
	waitFor(t, 10*time.Second, "sending held", e.sendingHeld)
	assert.Zero(t, e.tel.sentTotal.Load())
	rc.noStats.Store(false)
	waitFor(t, 10*time.Second, "delivery once the remote end confirms", func() bool { return e.tel.sentTotal.Load() == 5 })
	assert.Zero(t, e.tel.droppedTotal.Load())
	assert.False(t, e.sendingHeld())
}
