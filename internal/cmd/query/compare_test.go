package query

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// edgetelServer serves the fleet's blocks from a filesystem bucket through a synced Store.
func edgetelServer(t testing.TB, blockDirs []string, opts EngineOptions) string {
	t.Helper()
	return serve(t, edgetelHandler(t, newBlockStore(t, blockDirs), Options{Engine: opts, MaxResults: DefaultMaxResults}))
}

// edgetelHandler is the API handler over q, its active query log in a temporary directory.
func edgetelHandler(t testing.TB, q storage.SampleAndChunkQueryable, opts Options) *Handler {
	t.Helper()
	if opts.ActiveQueryDir == "" {
		opts.ActiveQueryDir = t.TempDir()
	}
	h, err := NewHandler(q, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	return h
}

// newBlockStore is a Store over a FILESYSTEM bucket holding blockDirs, synced once.
func newBlockStore(t testing.TB, blockDirs []string) *Store {
	t.Helper()
	bkt := fsBucket(t)
	for _, b := range blockDirs {
		uploadRaw(t, bkt, b)
	}
	store, err := NewStore(bkt, StoreOptions{Dir: t.TempDir(), MaxBytes: 1 << 30})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	require.NoError(t, store.Sync(context.Background()))
	require.Len(t, store.Blocks(), len(blockDirs))
	return store
}

// serve serves h on loopback for the test.
func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func fleetBlocks(t testing.TB) []string {
	t.Helper()
	dir := t.TempDir()
	var dirs []string
	for _, id := range testFleet.writeBlocks(t, dir) {
		dirs = append(dirs, filepath.Join(dir, id.String()))
	}
	return dirs
}

type apiCase struct {
	// bad cases are invalid requests: Prometheus must reject them too.
	bad    bool
	name   string
	path   string
	params url.Values
	form   bool
}

func v(kv ...string) url.Values {
	out := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		out.Add(kv[i], kv[i+1])
	}
	return out
}

func compareCases() []apiCase {
	f := testFleet
	mid := unix(f.base.Add(90 * time.Minute))
	boundary := unix(f.base.Add(2 * time.Hour))
	last := unix(f.end().Add(-time.Minute))
	start, end := unix(f.base.Add(10*time.Minute)), unix(f.end().Add(-10*time.Minute))
	before := unix(f.base.Add(-time.Hour))
	q := func(name, expr, ts string) apiCase {
		return apiCase{name: name, path: "/api/v1/query", params: v("query", expr, "time", ts)}
	}
	r := func(name, expr, step string) apiCase {
		return apiCase{name: name, path: "/api/v1/query_range", params: v("query", expr, "start", start, "end", end, "step", step)}
	}
	good := []apiCase{
		q("selector", `up`, mid),
		q("selector at block boundary", `up{job="kubeedge"}`, boundary),
		q("nodes connected", `count(count by (node) (up{job="kubeedge"} == 1))`, last),
		q("flaky node down", `up == 0`, unix(f.base.Add(2*time.Hour+25*time.Minute))),
		q("cpu rate by site", `sum by (site) (rate(container_cpu_usage_seconds_total{job="kubeedge"}[5m]))`, mid),
		q("memory by node", `sum by (node, site) (container_memory_working_set_bytes)`, last),
		q("topk", `topk(3, container_memory_working_set_bytes)`, mid),
		q("offset across blocks", `container_memory_working_set_bytes offset 1h`, last),
		q("range vector result", `up{node="edge-4"}[2m]`, mid),
		q("over time across blocks", `avg_over_time(scrape_duration_seconds[2h])`, last),
		q("changes flaky", `changes(up[3h])`, last),
		q("subquery", `max_over_time(rate(container_cpu_usage_seconds_total[5m])[30m:1m])`, mid),
		q("classic histogram", `histogram_quantile(0.9, sum by (le, site) (rate(edge_request_duration_seconds_bucket[5m])))`, mid),
		q("native histogram", `edge_request_duration_native_seconds{node="edge-0"}`, mid),
		q("native histogram quantile", `histogram_quantile(0.5, rate(edge_request_duration_native_seconds[5m]))`, mid),
		q("scalar", `scalar(count(up))`, mid),
		q("string", `"edge"`, mid),
		q("absent", `absent(no_such_metric)`, mid),
		q("before the data", `up`, before),
		q("regex matcher", `up{site=~"eu-.*", node!="edge-1"}`, mid),
		q("stats", `sum(up)`, mid),
		{name: "instant POST form", path: "/api/v1/query", params: v("query", `sum by (region) (up)`, "time", mid), form: true},
		r("range selector", `up{node=~"edge-[34]"}`, "60"),
		r("range rate", `sum by (node) (rate(container_cpu_usage_seconds_total[5m]))`, "300"),
		r("range flaky sites", `count by (site) (changes(up[15m]) > 0)`, "120"),
		r("range native histogram", `histogram_count(rate(edge_request_duration_native_seconds[5m]))`, "600"),
		{name: "range POST form", path: "/api/v1/query_range", params: v("query", `avg by (region) (container_memory_working_set_bytes)`, "start", start, "end", end, "step", "5m"), form: true},
		{name: "series", path: "/api/v1/series", params: v("match[]", `up`, "start", start, "end", end)},
		{name: "series two matchers", path: "/api/v1/series", params: v("match[]", `{site="eu-ams-1"}`, "match[]", `scrape_duration_seconds{node="edge-4"}`, "start", start, "end", end)},
		{name: "series POST", path: "/api/v1/series", params: v("match[]", `container_cpu_usage_seconds_total{container="app"}`), form: true},
		{name: "series limit", path: "/api/v1/series", params: v("match[]", `up`, "limit", "2")},
		{name: "labels", path: "/api/v1/labels"},
		{name: "labels matched", path: "/api/v1/labels", params: v("match[]", `up`, "start", start, "end", end)},
		{name: "labels POST", path: "/api/v1/labels", params: v("match[]", `edge_request_duration_seconds_bucket`), form: true},
		{name: "label values", path: "/api/v1/label/node/values"},
		{name: "metric names", path: "/api/v1/label/__name__/values"},
		{name: "label values matched", path: "/api/v1/label/site/values", params: v("match[]", `up{region="us"}`, "start", start, "end", end)},
		{name: "label values unknown", path: "/api/v1/label/nope/values"},
		{name: "metadata", path: "/api/v1/metadata"},
		{name: "rules", path: "/api/v1/rules"},
		{name: "rules alerting only", path: "/api/v1/rules", params: v("type", "alert")},
		{name: "alerts", path: "/api/v1/alerts"},
		{name: "exemplars", path: "/api/v1/query_exemplars", params: v("query", `rate(container_cpu_usage_seconds_total[5m])`, "start", start, "end", end)},
		{name: "format query", path: "/api/v1/format_query", params: v("query", `sum by(site)(rate(up[5m]))`)},
	}
	bad := []apiCase{
		q("parse error", `up{`, mid),
		q("unknown function", `nope(up)`, mid),
		q("type error", `rate(up)`, mid),
		q("bad time", `up`, "yesterday"),
		{name: "missing query", path: "/api/v1/query"},
		{name: "bad step", path: "/api/v1/query_range", params: v("query", "up", "start", start, "end", end, "step", "0")},
		{name: "too many points", path: "/api/v1/query_range", params: v("query", "up", "start", start, "end", end, "step", "0.1")},
		{name: "end before start", path: "/api/v1/query_range", params: v("query", "up", "start", end, "end", start, "step", "60")},
		{name: "series without match", path: "/api/v1/series"},
		{name: "series bad matcher", path: "/api/v1/series", params: v("match[]", `{node=~"("}`)},
		{name: "label values bad start", path: "/api/v1/label/node/values", params: v("start", "soon")},
		{name: "labels bad limit", path: "/api/v1/labels", params: v("limit", "many")},
		{name: "rules bad type", path: "/api/v1/rules", params: v("type", "sometimes")},
		{name: "execution error", path: "/api/v1/query", params: v("query", `label_replace(up, "node", "x", "node", ".*") * on() group_left up`, "time", mid)},
	}
	for _, c := range bad {
		c.bad = true
		good = append(good, c)
	}
	return good
}

// TestMatchesPrometheus runs the same API requests against edgetel-query and a real Prometheus
// over the same blocks and requires identical answers.
func TestMatchesPrometheus(t *testing.T) {
	testprog.Path(t, "EDGETEL_PROMETHEUS", "tool-prometheus")
	blocks := fleetBlocks(t)
	prom := startPrometheus(t, blocks)
	ours := edgetelServer(t, blocks, DefaultEngineOptions)

	for _, c := range compareCases() {
		t.Run(c.name, func(t *testing.T) {
			params := c.params
			if c.name == "stats" {
				params = cloneWith(params, "stats", "all")
			}
			wantCode, wantBody := get(t, prom, c.path, params, c.form)
			gotCode, gotBody := get(t, ours, c.path, params, c.form)
			if os.Getenv("EDGETEL_QUERY_DUMP") != "" {
				t.Logf("%d %.300s", wantCode, wantBody)
			}
			// The reference must agree on what is valid, or the case tests nothing.
			require.Equal(t, c.bad, wantCode >= 400, "prometheus answered %d: %s", wantCode, wantBody)
			assert.Equal(t, wantCode, gotCode, "status code")
			assert.JSONEq(t, normalise(t, wantBody), normalise(t, gotBody))
		})
	}
}

func cloneWith(p url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range p {
		out[kk] = append([]string(nil), vv...)
	}
	out.Set(k, val)
	return out
}

// normalise drops what must differ between two servers: the order of instant-vector results
// (undefined: histogram_quantile and others emit groups in map order), query timings in stats, and the
// seriesTouched statistic that Prometheus 3.16 (the reference binary) added after 3.15 (the
// engine edgetel links).
func normalise(t *testing.T, body string) string {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &doc), body)
	if data, ok := doc["data"].(map[string]any); ok {
		if res, ok := data["result"].([]any); ok && data["resultType"] == "vector" {
			slices.SortFunc(res, func(a, b any) int {
				am, _ := json.Marshal(a.(map[string]any)["metric"])
				bm, _ := json.Marshal(b.(map[string]any)["metric"])
				return strings.Compare(string(am), string(bm))
			})
		}
		if st, ok := data["stats"].(map[string]any); ok {
			delete(st, "timings")
			if samples, ok := st["samples"].(map[string]any); ok {
				delete(samples, "seriesTouched")
			}
		}
	}
	out, err := json.Marshal(doc)
	require.NoError(t, err)
	return string(out)
}
