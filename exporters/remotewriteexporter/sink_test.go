package remotewriteexporter

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/exporters/remotewriteexporter/internal/metadata"
)

// sink is a remote-write receiver on loopback that decodes RW 1.0 requests and keeps every
// sample, so tests can check delivery sample by sample. Like Prometheus it keeps an identical
// sample (same series, timestamp and value) once, and counts the repeats: delivery is at least
// once, and a request the exporter gave up on (shutdown) may still be processed here.
type sampleID struct {
	series string
	t      int64
	v      float64
}

type sink struct {
	t      testing.TB
	srv    *http.Server
	ln     net.Listener
	mu     sync.Mutex
	series map[string][]prompb.Sample
	seen   map[sampleID]bool
	total  int // distinct samples
	dups   int // repeats of a sample already stored
	reqs   []*http.Request
	// respond, when set, may answer a request itself (return true) instead of storing it.
	respond func(n int, req *prompb.WriteRequest, w http.ResponseWriter) bool
	// drainOnly answers 204 without decoding: the cheapest possible remote end, for benchmarks.
	drainOnly atomic.Bool
	down      atomic.Bool // answer 503
}

func newSink(t testing.TB) *sink {
	s := &sink{t: t, series: map[string][]prompb.Sample{}, seen: map[sampleID]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

func (s *sink) url() string { return "http://" + s.ln.Addr().String() + "/api/v1/write" }

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if s.drainOnly.Load() {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, "snappy: "+err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.WriteRequest
	if strings.Contains(r.Header.Get("Content-Type"), "write.v2") {
		err = unmarshalV2(raw, &req)
	} else {
		err = req.Unmarshal(raw)
	}
	if err != nil {
		http.Error(w, "proto: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, r)
	respond := s.respond
	s.mu.Unlock()
	if respond != nil && respond(n, &req, w) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	written := 0
	for _, ts := range req.Timeseries {
		written += len(ts.Samples)
	}
	if strings.Contains(r.Header.Get("Content-Type"), "write.v2") {
		w.Header().Set(headerSamplesWritten, strconv.Itoa(written)) // as an RW 2.0 receiver must
	}
	for _, ts := range req.Timeseries {
		k := seriesKey(ts.Labels)
		for _, smp := range ts.Samples {
			id := sampleID{k, smp.Timestamp, smp.Value}
			if s.seen[id] {
				s.dups++
				continue
			}
			s.seen[id] = true
			s.total++
			s.series[k] = append(s.series[k], smp)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *sink) samples() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *sink) duplicates() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dups
}

func (s *sink) snapshot() map[string][]prompb.Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]prompb.Sample, len(s.series))
	for k, v := range s.series {
		out[k] = append([]prompb.Sample(nil), v...)
	}
	return out
}

func (s *sink) request(i int) *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[i]
}

func testConfig(t testing.TB, endpoint string) *Config {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Endpoint = endpoint
	cfg.Buffer.Directory = t.TempDir()
	cfg.Buffer.Fsync = "never"
	cfg.RetryConfig.InitialInterval = 10 * time.Millisecond
	cfg.RetryConfig.MaxInterval = 200 * time.Millisecond
	cfg.ExternalLabels = map[string]string{"cluster": "c1"}
	return cfg
}

// startExporter runs the exporter's own start/push/shutdown (not through exporterhelper) so
// tests can read its counters.
func startExporter(t testing.TB, cfg *Config, set component.TelemetrySettings, logger *zap.Logger) *rwExporter {
	t.Helper()
	require.NoError(t, cfg.Validate())
	es := exportertest.NewNopSettings(metadata.Type)
	if set.MeterProvider != nil {
		es.TelemetrySettings = set
	}
	if logger != nil {
		es.Logger = logger
	}
	e := newExporter(cfg, es)
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.shutdown(context.Background()) })
	return e
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unmarshalV2 reads an RW 2.0 request into the RW 1.0 form the sink keeps (samples only).
func unmarshalV2(raw []byte, out *prompb.WriteRequest) error {
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		return err
	}
	for _, ts := range req.Timeseries {
		var p prompb.TimeSeries
		for i := 0; i+1 < len(ts.LabelsRefs); i += 2 {
			p.Labels = append(p.Labels, prompb.Label{Name: req.Symbols[ts.LabelsRefs[i]], Value: req.Symbols[ts.LabelsRefs[i+1]]})
		}
		for _, smp := range ts.Samples {
			p.Samples = append(p.Samples, prompb.Sample{Value: smp.Value, Timestamp: smp.Timestamp})
		}
		out.Timeseries = append(out.Timeseries, p)
	}
	return nil
}
