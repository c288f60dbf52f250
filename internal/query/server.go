package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"
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
}

// DefaultEngineOptions are Prometheus' defaults.
var DefaultEngineOptions = EngineOptions{Timeout: 2 * time.Minute, MaxSamples: 50_000_000, LookbackDelta: 5 * time.Minute}

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
	return nil
}

// servedPaths are the API routes edgetel-query answers (what Grafana's Prometheus data source
// uses); the other routes of web/api/v1 need a scraper, rules or a writable TSDB and are 404.
var servedPaths = []string{
	"/query", "/query_range", "/series", "/labels", "/metadata", "/status/buildinfo",
	"/format_query", "/parse_query", "/query_exemplars",
}

// NewHandler returns the Prometheus HTTP API (under APIPrefix) over q, served by Prometheus'
// own web/api/v1 handlers and promql engine, so answers and errors are Prometheus' own.
func NewHandler(q storage.SampleAndChunkQueryable, opts EngineOptions, logger *slog.Logger) (http.Handler, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:        logger.With("component", "query engine"),
		MaxSamples:    opts.MaxSamples,
		Timeout:       opts.Timeout,
		LookbackDelta: opts.LookbackDelta,
		// Prometheus' default global evaluation interval, for subqueries without a step.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		// Always on in Prometheus since v2.33.
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	// NewAPI takes Prometheus' whole server; edgetel-query has only storage and an engine, so
	// the scraper, rules, alerting, admin and write parts are empty and their routes unserved.
	api := apiv1.NewAPI(engine, q, nil /* ap */, nil /* apV2 */, noExemplars{},
		nil, /* scrape pools */
		func(context.Context) apiv1.TargetRetriever { return noTargets{} },
		nil,                 /* alertmanagers */
		nil,                 /* config */
		map[string]string{}, /* flags */
		apiv1.GlobalURLOptions{},
		func(f http.HandlerFunc) http.HandlerFunc { return f }, /* ready */
		nil /* TSDB admin */, "" /* db dir */, false /* admin */, false /* search */, 0, /* max search limit */
		logger,
		nil,     /* rules */
		0, 1, 1, /* remote read limits */
		false, /* agent */
		// Prometheus' --web.cors.origin default; web/api/v1 dereferences it on every request
		// that carries an Origin header.
		regexp.MustCompile("^(?:.*)$"),
		nil, /* runtime info */
		buildInfo(),
		nil, nil, /* notifications */
		nil, nil, /* gatherer, registerer */
		nil, /* stats renderer */
		false /* remote write */, nil, false /* OTLP */, false, false, false,
		opts.LookbackDelta,
		false /* type and unit labels */, false, /* append metadata */
		nil, /* override error code */
		nil, /* feature registry */
		apiv1.OpenAPIOptions{},
		nil, /* parser: the default one, as the engine's */
	)
	r := route.New()
	api.Register(r)
	return &filter{next: http.StripPrefix(APIPrefix, r)}, nil
}

type filter struct{ next http.Handler }

func (f *filter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := strings.CutPrefix(r.URL.Path, APIPrefix)
	if !ok || !served(p) {
		http.NotFound(w, r)
		return
	}
	f.next.ServeHTTP(w, r)
}

func served(p string) bool {
	for _, s := range servedPaths {
		if p == s {
			return true
		}
	}
	name, ok := strings.CutPrefix(p, "/label/")
	return ok && strings.HasSuffix(name, "/values")
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

// PrometheusVersion is the Prometheus release whose engine and API edgetel-query links
// (module github.com/prometheus/prometheus v0.315.1 is Prometheus 3.15.1); a test keeps it in
// step with go.mod. Grafana picks its query features from it.
const PrometheusVersion = "3.15.1"

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
