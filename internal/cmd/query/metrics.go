package query

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is edgetel-query's own /metrics, in its own registry (no global state).
//
// The engine's metrics keep Prometheus' names (prometheus_engine_queries,
// prometheus_engine_queries_concurrent_max, prometheus_engine_query_duration_seconds, …): they
// come from Prometheus' engine, and the Prometheus mixin's dashboards and alerts already read
// them. What edgetel-query adds is named edgetel_query_*.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	unauthorized prometheus.Counter
	syncs        *prometheus.CounterVec
	lastSync     prometheus.Gauge
}

func newMetrics(store *Store) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgetel_query_http_requests_total",
			Help: "API requests answered, by handler (the API path, label values as /label/:name/values) and status code.",
		}, []string{"handler", "code"}),
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgetel_query_http_unauthorized_requests_total",
			Help: "Requests refused with 401 for missing or wrong credentials.",
		}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgetel_query_bucket_syncs_total",
			Help: "Bucket syncs, by result (success, failure).",
		}, []string{"result"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgetel_query_bucket_last_successful_sync_timestamp_seconds",
			Help: "When the cache last caught up with the bucket.",
		}),
	}
	reg.MustRegister(m.requests, m.unauthorized, m.syncs, m.lastSync,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgetel_query_cached_blocks", Help: "Blocks in the local cache, queryable.",
		}, func() float64 { return float64(len(store.Blocks())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgetel_query_cache_bytes", Help: "Size of the cached blocks.",
		}, func() float64 { return float64(store.CachedBytes()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "edgetel_query_incomplete_queries_total",
			Help: "Queries answered with a warning that their range reaches samples the bucket holds and the cache does not (evicted by the size bound, or only downsampled).",
		}, func() float64 { return float64(store.IncompleteQueries()) }),
	)
	for _, r := range []string{"success", "failure"} {
		m.syncs.WithLabelValues(r)
	}
	return m
}

func (m *metrics) observeSync(err error) {
	if err != nil {
		m.syncs.WithLabelValues("failure").Inc()
		return
	}
	m.syncs.WithLabelValues("success").Inc()
	m.lastSync.Set(float64(time.Now().UnixNano()) / 1e9)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// instrument counts requests by handler and code; label names in paths are folded so that
// the handler label stays bounded.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		m.requests.WithLabelValues(handlerLabel(r.URL.Path), strconv.Itoa(rec.code)).Inc()
	})
}

func handlerLabel(path string) string {
	p, ok := strings.CutPrefix(path, APIPrefix)
	switch {
	case !ok:
		return "other"
	case isLabelValues(p):
		return APIPrefix + "/label/:name/values"
	case served(p):
		return path
	default:
		return "other"
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
