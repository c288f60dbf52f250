package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/edgetel/edgetel/internal/promversion"
)

// APIPrefix is where the Prometheus HTTP API is served, as in Prometheus.
const APIPrefix = "/api/v1"

// EngineOptions are the query limits, named after Prometheus' flags.
type EngineOptions struct {
	// Timeout aborts a query that runs longer (--query.timeout).
	Timeout time.Duration
	// MaxSamples aborts a query that would hold more samples in memory (--query.max-samples).
	MaxSamples int
	// LookbackDelta is how far back an instant selector looks for a sample (--query.lookback-delta).
	LookbackDelta time.Duration
	// MaxConcurrency bounds the queries evaluated at once (--query.max-concurrency); more wait
	// in a queue until a slot frees or their request ends, as in Prometheus.
	MaxConcurrency int
}

// DefaultEngineOptions are Prometheus' defaults.
var DefaultEngineOptions = EngineOptions{Timeout: 2 * time.Minute, MaxSamples: 50_000_000, LookbackDelta: 5 * time.Minute, MaxConcurrency: 20}

// Options configure the API handler.
type Options struct {
	Engine EngineOptions
	// ActiveQueryDir holds Prometheus' active query log (queries.active): the queries running
	// when the process died are logged at the next start. Required.
	ActiveQueryDir string
	// MaxResults bounds the series, label names or label values one /series, /labels or
	// /label/<name>/values answer holds; a client's limit above it, or none, is lowered to it.
	// 0: no server-side bound.
	MaxResults int
	// CORSOrigin is the origin regexp browsers may read answers from; nil: no origin may.
	CORSOrigin *regexp.Regexp
	// Registerer receives the engine's metrics; nil: none.
	Registerer prometheus.Registerer
	// Rules answers /api/v1/rules and /api/v1/alerts, and Alertmanagers /api/v1/alertmanagers,
	// once the ruler runs (they are called per request); nil: no rules, no Alertmanagers.
	Rules         func() apiv1.RulesRetriever
	Alertmanagers func() apiv1.AlertmanagerRetriever
}

// DefaultMaxResults is the default of Options.MaxResults: Grafana's default series limit.
const DefaultMaxResults = 40_000

// noOrigin is the CORS regexp when no origin is configured: it matches no Origin header, so
// web/api/v1 sets no Access-Control-Allow-Origin and browsers keep answers from other pages.
var noOrigin = regexp.MustCompile(`^\b$`)

func (o EngineOptions) validate() error {
	if o.Timeout <= 0 {
		return fmt.Errorf("query timeout must be positive, got %s", o.Timeout)
	}
	if o.MaxSamples <= 0 {
		return fmt.Errorf("query max samples must be positive, got %d", o.MaxSamples)
	}
	if o.LookbackDelta <= 0 {
		return fmt.Errorf("lookback delta must be positive, got %s", o.LookbackDelta)
	}
	if o.MaxConcurrency <= 0 {
		return fmt.Errorf("query max concurrency must be positive, got %d", o.MaxConcurrency)
	}
	return nil
}

// servedPaths are the API routes edgetel-query answers (what Grafana's Prometheus data source
// uses); the other routes of web/api/v1 need a scraper, rules or a writable TSDB and are 404.
var servedPaths = []string{
	"/query", "/query_range", "/series", "/labels", "/metadata", "/status/buildinfo",
	"/format_query", "/parse_query", "/query_exemplars", "/rules", "/alerts", "/alertmanagers",
}

// limitedPaths take Prometheus' limit parameter and get Options.MaxResults.
var limitedPaths = []string{"/series", "/labels"}

// Handler serves the API; Close releases the active query log.
type Handler struct {
	http.Handler
	engine *promql.Engine
}

// Close closes the engine and its active query log.
func (h *Handler) Close() error { return h.engine.Close() }

// Engine is the engine the API evaluates queries with; the ruler evaluates its rules with it
// too, under the same limits.
func (h *Handler) Engine() *promql.Engine { return h.engine }

// NewHandler returns the Prometheus HTTP API (under APIPrefix) over q, served by Prometheus'
// own web/api/v1 handlers and promql engine, so answers and errors are Prometheus' own.
func NewHandler(q storage.SampleAndChunkQueryable, opts Options, logger *slog.Logger) (*Handler, error) {
	if err := opts.Engine.validate(); err != nil {
		return nil, err
	}
	if opts.MaxResults < 0 {
		return nil, fmt.Errorf("max results must not be negative, got %d", opts.MaxResults)
	}
	if opts.ActiveQueryDir == "" {
		return nil, errors.New("active query log directory is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cors := opts.CORSOrigin
	if cors == nil {
		cors = noOrigin
	}
	tracker, err := promql.NewActiveQueryTracker(opts.ActiveQueryDir, opts.Engine.MaxConcurrency, logger.With("component", "activeQueryTracker"))
	if err != nil {
		return nil, err
	}
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:             logger.With("component", "query engine"),
		Reg:                opts.Registerer,
		MaxSamples:         opts.Engine.MaxSamples,
		Timeout:            opts.Engine.Timeout,
		LookbackDelta:      opts.Engine.LookbackDelta,
		ActiveQueryTracker: tracker,
		// Prometheus' default global evaluation interval, for subqueries without a step.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		// Always on in Prometheus since v2.33.
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	// NewAPI takes Prometheus' whole server; edgetel-query has only storage and an engine, so
	// the scraper, alerting, admin and write parts are empty and their routes unserved.
	api := apiv1.NewAPI(engine, q, nil /* ap */, nil /* apV2 */, noExemplars{},
		nil, /* scrape pools */
		func(context.Context) apiv1.TargetRetriever { return noTargets{} },
		func(context.Context) apiv1.AlertmanagerRetriever { return alertmanagers(opts.Alertmanagers) },
		nil,                 /* config */
		map[string]string{}, /* flags */
		apiv1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f }, /* ready */
		nil /* TSDB admin */, "" /* db dir */, false /* admin */, false /* search */, 0, /* max search limit */
		logger,
		func(context.Context) apiv1.RulesRetriever { return rulesOf(opts.Rules) },
		0, 1, 1, /* remote read limits */
		false, /* agent */
		// web/api/v1 dereferences it on every request that carries an Origin header.
		cors,
		nil, /* runtime info */
		buildInfo(),
		nil, nil, /* notifications */
		nil, nil, /* gatherer, registerer */
		nil, /* stats renderer */
		false /* remote write */, nil, false /* OTLP */, false, false, false,
		opts.Engine.LookbackDelta,
		false /* type and unit labels */, false, /* append metadata */
		nil, /* override error code */
		nil, /* feature registry */
		apiv1.OpenAPIOptions{},
		nil, /* parser: the default one, as the engine's */
	)
	r := route.New()
	api.Register(r)
	f := &filter{next: http.StripPrefix(APIPrefix, r), maxResults: opts.MaxResults,
		slots: make(chan struct{}, opts.Engine.MaxConcurrency)}
	return &Handler{Handler: f, engine: engine}, nil
}

type filter struct {
	next       http.Handler
	maxResults int
	// slots admits MaxConcurrency requests of any API path at once: the engine's own limit
	// covers only PromQL, and /series or /labels over months of blocks can hold as much memory.
	slots chan struct{}
}

func (f *filter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := strings.CutPrefix(r.URL.Path, APIPrefix)
	if !ok || !served(p) {
		http.NotFound(w, r)
		return
	}
	// Queued as the engine queues queries: until a slot frees or the client gives up.
	select {
	case f.slots <- struct{}{}:
		defer func() { <-f.slots }()
	case <-r.Context().Done():
		http.Error(w, "request cancelled while waiting for a free slot", http.StatusServiceUnavailable)
		return
	}
	if f.maxResults > 0 && limited(p) {
		if err := capLimit(r, f.maxResults); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": err.Error()})
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

// capLimit lowers the request's limit parameter to max when it is missing, 0 (no limit) or
// above max; web/api/v1 then truncates the answer and adds the warning "results truncated due
// to limit". A limit that does not parse is left for web/api/v1 to refuse.
func capLimit(r *http.Request, max int) error {
	// web/api/v1 reads parameters from r.Form; parsed here, the edit is what it reads.
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("error parsing form values: %w", err)
	}
	n, err := strconv.Atoi(r.Form.Get("limit"))
	if r.Form.Get("limit") == "" || err == nil && (n == 0 || n > max) {
		r.Form.Set("limit", strconv.Itoa(max))
	}
	return nil
}

func limited(p string) bool {
	return slices.Contains(limitedPaths, p) || isLabelValues(p)
}

func served(p string) bool {
	return slices.Contains(servedPaths, p) || isLabelValues(p)
}

func isLabelValues(p string) bool {
	name, ok := strings.CutPrefix(p, "/label/")
	return ok && strings.HasSuffix(name, "/values")
}

// noRules answers /api/v1/rules and /api/v1/alerts as a Prometheus without rules does (empty
// groups, no alerts) when no rule file is given: Grafana Alerting asks every Prometheus data
// source for its rules and reports a 404 as an error.
type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }

func rulesOf(f func() apiv1.RulesRetriever) apiv1.RulesRetriever {
	if f == nil {
		return noRules{}
	}
	if r := f(); r != nil {
		return r
	}
	return noRules{}
}

// noAlertmanagers answers /api/v1/alertmanagers as a Prometheus without alerting configuration.
type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

func alertmanagers(f func() apiv1.AlertmanagerRetriever) apiv1.AlertmanagerRetriever {
	if f == nil {
		return noAlertmanagers{}
	}
	if r := f(); r != nil {
		return r
	}
	return noAlertmanagers{}
}

// noTargets answers /api/v1/metadata: blocks carry no metric metadata, and a Prometheus without
// targets answers the same empty object.
type noTargets struct{}

func (noTargets) TargetsActive() map[string][]*scrape.Target  { return nil }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return nil }
func (noTargets) TargetsDroppedCounts() map[string]int        { return nil }
func (noTargets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("edgetel-query has no scrape pools")
}

// noExemplars answers /api/v1/query_exemplars (Grafana's exemplar toggle) with none: blocks
// written by edgetel hold no exemplars.
type noExemplars struct{}

func (noExemplars) ExemplarQuerier(context.Context) (storage.ExemplarQuerier, error) {
	return noExemplars{}, nil
}

func (noExemplars) Select(int64, int64, ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return []exemplar.QueryResult{}, nil
}

// PrometheusVersion is the Prometheus release whose engine and API edgetel-query links; a test
// keeps it in step with go.mod. Grafana picks its query features from it.
const PrometheusVersion = promversion.Version

func buildInfo() *apiv1.PrometheusVersion {
	v := &apiv1.PrometheusVersion{Version: PrometheusVersion, GoVersion: runtime.Version(), Branch: "edgetel-query"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Revision = s.Value
			}
		}
	}
	return v
}
