package objstoreexporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"gopkg.in/yaml.v2"

	"github.com/edgetel/edgetel/internal/promversion"
)

// Limits of the remote-read endpoint, Prometheus' defaults (--storage.remote.read-*); the
// sample limit is the configured one per request.
const (
	readConcurrency     = 10
	readMaxBytesInFrame = 1 << 20
	// metadataLimit bounds /series, /labels and /label/<name>/values answers when the request
	// sets no smaller limit.
	metadataLimit = 100_000
)

// headAPI serves the local TSDB (head and the blocks still on local disk) with the Prometheus
// endpoints a stock Thanos sidecar calls when it runs with shipping off, so Thanos Query (and
// edgetel-query, through remote read) see the samples not yet in the bucket.
type headAPI struct {
	store    *localStore
	external labels.Labels
	srv      *http.Server
	listener net.Addr
	done     chan error
}

// startHeadAPI listens on the configured endpoint and serves store until shutdown.
func (e *objstoreExporter) startHeadAPI(ctx context.Context, host component.Host, store *localStore) (*headAPI, error) {
	cfg := e.cfg.HeadAPI.Get()
	if cfg == nil {
		return nil, nil
	}
	h := &headAPI{store: store, external: labels.FromMap(e.cfg.ExternalLabels), done: make(chan error, 1)}
	ln, err := cfg.ToListener(ctx)
	if err != nil {
		return nil, fmt.Errorf("head_api: listen on %s: %w", cfg.NetAddr.Endpoint, err)
	}
	// Remote-read requests are snappy-compressed protobuf that Prometheus' handler decodes
	// itself: confighttp must pass them through instead of decompressing them.
	passThrough := func(body io.ReadCloser) (io.ReadCloser, error) { return body, nil }
	srv, err := cfg.ToServer(ctx, host.GetExtensions(), e.set, h.handler(e), confighttp.WithDecoder("snappy", passThrough))
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("head_api: %w", err)
	}
	h.srv, h.listener = srv, ln.Addr()
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		h.done <- err
	}()
	e.logger.Info("objstore exporter: serving the local TSDB for Thanos' sidecar", "addr", ln.Addr().String())
	return h, nil
}

// shutdown stops accepting requests and waits for running ones (remote reads hold the TSDB's
// queriers, so the TSDB may only close after them).
func (h *headAPI) shutdown(ctx context.Context) error {
	if h == nil {
		return nil
	}
	err := h.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, h.srv.Close())
	}
	return errors.Join(err, <-h.done)
}

func (h *headAPI) handler(e *objstoreExporter) http.Handler {
	mux := http.NewServeMux()
	cfg := config.Config{GlobalConfig: config.GlobalConfig{ExternalLabels: h.external}}
	// The read handler adds the external labels to every series and drops matchers on them, as
	// Prometheus does: the sidecar expects exactly that.
	mux.Handle("POST /api/v1/read", newBoundedRead(e.logger, h.store, cfg, e.cfg.HeadAPI.Get()))
	mux.HandleFunc("GET /api/v1/status/config", h.statusConfig)
	mux.HandleFunc("GET /api/v1/status/buildinfo", buildInfo)
	mux.HandleFunc("GET /api/v1/series", h.series)
	mux.HandleFunc("GET /api/v1/labels", h.labelNames)
	mux.HandleFunc("GET /api/v1/label/{name}/values", h.labelValues)
	mux.HandleFunc("GET /metrics", h.metrics)
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "objstore exporter head is Ready.") })
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "objstore exporter head is Healthy.") })
	return mux
}

// statusConfig answers as Prometheus' /api/v1/status/config, with a configuration that holds
// only what readers parse from it: global.external_labels.
func (h *headAPI) statusConfig(w http.ResponseWriter, _ *http.Request) {
	var conf struct {
		Global struct {
			ExternalLabels map[string]string `yaml:"external_labels"`
		} `yaml:"global"`
	}
	conf.Global.ExternalLabels = h.external.Map()
	y, err := yaml.Marshal(conf)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err)
		return
	}
	apiSuccess(w, map[string]string{"yaml": string(y)})
}

func buildInfo(w http.ResponseWriter, _ *http.Request) {
	apiSuccess(w, map[string]string{
		"version": promversion.Version, "revision": "", "branch": "edgetel-objstore-exporter",
		"buildUser": "", "buildDate": "", "goVersion": runtime.Version(),
	})
}

// metrics exposes the one series Thanos' sidecar reads from Prometheus' /metrics: the oldest
// timestamp the TSDB holds, which bounds the time range the sidecar announces.
func (h *headAPI) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	// As Prometheus computes it, float64(ms)/1000: for an empty TSDB the sidecar recognizes
	// exactly float64(MaxInt64)/1000 and then announces no lower bound.
	fmt.Fprintf(w, "# HELP prometheus_tsdb_lowest_timestamp_seconds Lowest timestamp value stored in the database.\n"+
		"# TYPE prometheus_tsdb_lowest_timestamp_seconds gauge\nprometheus_tsdb_lowest_timestamp_seconds %s\n",
		strconv.FormatFloat(float64(h.lowest())/1000, 'g', -1, 64))
}

// lowest is the oldest timestamp in the local TSDB (a head being replayed included), or
// MaxInt64 when it is empty (as Prometheus reports it).
func (h *headAPI) lowest() int64 { return h.store.lowest() }

// metadataRequest is the parsed form of a /series, /labels or /label/<name>/values request.
type metadataRequest struct {
	mint, maxt int64
	selectors  [][]*labels.Matcher
	limit      int
}

func parseMetadataRequest(r *http.Request) (*metadataRequest, error) {
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	req := &metadataRequest{mint: math.MinInt64, maxt: math.MaxInt64, limit: metadataLimit}
	var err error
	if s := r.Form.Get("start"); s != "" {
		if req.mint, err = parseTime(s); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	if s := r.Form.Get("end"); s != "" {
		if req.maxt, err = parseTime(s); err != nil {
			return nil, fmt.Errorf("end: %w", err)
		}
	}
	if s := r.Form.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("limit: %q is not a non-negative integer", s)
		}
		if n > 0 {
			req.limit = min(n, metadataLimit)
		}
	}
	for _, s := range r.Form["match[]"] {
		ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(s)
		if err != nil {
			return nil, fmt.Errorf("match[]: %w", err)
		}
		req.selectors = append(req.selectors, ms)
	}
	return req, nil
}

// parseTime reads a Prometheus API time: Unix seconds (with a fraction) or RFC 3339.
func parseTime(s string) (int64, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return int64(math.Round(f * 1000)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither Unix seconds nor RFC 3339", s)
	}
	return t.UnixMilli(), nil
}

// series answers as Prometheus' /api/v1/series, without external labels (the sidecar adds them).
func (h *headAPI) series(w http.ResponseWriter, r *http.Request) {
	req, err := parseMetadataRequest(r)
	if err == nil && len(req.selectors) == 0 {
		err = errors.New("match[]: at least one selector is required")
	}
	if err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	q, err := h.store.Querier(req.mint, req.maxt)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err)
		return
	}
	defer q.Close()
	var sets []storage.SeriesSet
	hints := &storage.SelectHints{Start: req.mint, End: req.maxt, Func: "series", Limit: req.limit}
	for _, ms := range req.selectors {
		sets = append(sets, q.Select(r.Context(), true, hints, ms...))
	}
	set := storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	out := []map[string]string{}
	for set.Next() && len(out) < req.limit {
		out = append(out, set.At().Labels().Map())
	}
	if err := set.Err(); err != nil {
		apiError(w, http.StatusInternalServerError, err)
		return
	}
	apiSuccess(w, out)
}

func (h *headAPI) labelNames(w http.ResponseWriter, r *http.Request) {
	h.labels(w, r, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, error) {
		names, _, err := q.LabelNames(ctx, hints, ms...)
		return names, err
	})
}

func (h *headAPI) labelValues(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	h.labels(w, r, func(ctx context.Context, q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, error) {
		values, _, err := q.LabelValues(ctx, name, hints, ms...)
		return values, err
	})
}

// labels answers a /labels or /label/<name>/values request: the union over the selectors.
func (h *headAPI) labels(w http.ResponseWriter, r *http.Request, get func(context.Context, storage.Querier, *storage.LabelHints, []*labels.Matcher) ([]string, error)) {
	req, err := parseMetadataRequest(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	q, err := h.store.Querier(req.mint, req.maxt)
	if err != nil {
		apiError(w, http.StatusInternalServerError, err)
		return
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: req.limit}
	if len(req.selectors) == 0 {
		req.selectors = [][]*labels.Matcher{nil}
	}
	var out []string
	for _, ms := range req.selectors {
		vals, err := get(r.Context(), q, hints, ms)
		if err != nil {
			apiError(w, http.StatusInternalServerError, err)
			return
		}
		out = append(out, vals...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	apiSuccess(w, out[:min(len(out), req.limit)])
}

func apiSuccess(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": data})
}

func apiError(w http.ResponseWriter, code int, err error) {
	kind := "bad_data"
	if code >= 500 {
		kind = "internal"
	}
	writeJSON(w, code, map[string]any{"status": "error", "errorType": kind, "error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
