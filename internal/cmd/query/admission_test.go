package query

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// TestRulesAndAlertsAreEmpty: Grafana Alerting asks every Prometheus data source for its rules;
// edgetel-query answers as a Prometheus without rule files does.
func TestRulesAndAlertsAreEmpty(t *testing.T) {
	srv := edgetelServer(t, fleetBlocks(t)[:1], DefaultEngineOptions)
	for path, want := range map[string]string{
		"/api/v1/rules":  `{"status":"success","data":{"groups":[]}}`,
		"/api/v1/alerts": `{"status":"success","data":{"alerts":[]}}`,
	} {
		code, body := get(t, srv, path, nil, false)
		assert.Equal(t, http.StatusOK, code, path)
		assert.JSONEq(t, want, body, path)
	}
	code, body := get(t, srv, "/api/v1/rules", v("type", "record"), false)
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"success","data":{"groups":[]}}`, body)
}

// holdingQueryable blocks every Select of the series "up" until release is closed (or the
// query's context ends), so a test controls how long a query runs.
type holdingQueryable struct {
	storage.SampleAndChunkQueryable
	release chan struct{}
	entered atomic.Int32 // Selects of up
	others  atomic.Int32 // other Selects made while up is held
}

func (h *holdingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := h.SampleAndChunkQueryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &holdingQuerier{Querier: q, h: h}, nil
}

type holdingQuerier struct {
	storage.Querier
	h *holdingQueryable
}

func (q *holdingQuerier) Select(ctx context.Context, sort bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && m.Value == "up" {
			// The query holds its slot until released, past its own deadline.
			q.h.entered.Add(1)
			<-q.h.release
			return q.Querier.Select(ctx, sort, hints, ms...)
		}
	}
	select {
	case <-q.h.release:
	default:
		q.h.others.Add(1)
	}
	return q.Querier.Select(ctx, sort, hints, ms...)
}

// held counts a storage read made while up is held.
func (q *holdingQuerier) held() {
	select {
	case <-q.h.release:
	default:
		q.h.others.Add(1)
	}
}

func (q *holdingQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.held()
	return q.Querier.LabelNames(ctx, hints, ms...)
}

func (q *holdingQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.held()
	return q.Querier.LabelValues(ctx, name, hints, ms...)
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

type answer struct {
	code int
	body string
}

func queryAsync(t *testing.T, base, query, at string) chan answer {
	out := make(chan answer, 1)
	go func() {
		resp, err := http.Get(base + "/api/v1/query?" + v("query", query, "time", at).Encode())
		if err != nil {
			out <- answer{0, err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- answer{resp.StatusCode, string(b)}
	}()
	return out
}

// TestConcurrencyLimitQueues: with --query.max-concurrency 1, a second query waits in the queue
// (it never reaches storage) while the first runs, until its client gives up; queries answer
// again once the first finishes. As in Prometheus, the wait is bounded by the client (Grafana's
// data source timeout), not by --query.timeout.
func TestConcurrencyLimitQueues(t *testing.T) {
	hq := &holdingQueryable{SampleAndChunkQueryable: newBlockStore(t, fleetBlocks(t)), release: make(chan struct{})}
	opts := DefaultEngineOptions
	opts.MaxConcurrency = 1
	reg := prometheus.NewRegistry()
	srv := serve(t, edgetelHandler(t, hq, Options{Engine: opts, Registerer: reg}))
	at := unix(testFleet.end().Add(-time.Minute))
	assert.Equal(t, 1.0, gaugeValue(t, reg, "prometheus_engine_queries_concurrent_max"))

	first := queryAsync(t, srv, `count(up)`, at)
	require.Eventually(t, func() bool { return hq.entered.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	// Without the limit this query answers in milliseconds; queued, its client gives up first.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv+"/api/v1/query?"+v("query", `count(container_cpu_usage_seconds_total)`, "time", at).Encode(), nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("the second query ran while the first held the only slot: %d %s", resp.StatusCode, b)
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, hq.others.Load(), "the queued query did not reach storage")

	close(hq.release)
	a := <-first
	assert.Equal(t, http.StatusOK, a.code, a.body)
	// The slot is free again, and the abandoned query did not keep one.
	for range 2 {
		a = <-queryAsync(t, srv, `count(container_cpu_usage_seconds_total)`, at)
		assert.Equal(t, http.StatusOK, a.code, a.body)
	}
}

// TestEveryAPIPathIsAdmitted: /series, /labels and /label/<name>/values take a slot of
// --query.max-concurrency as queries do: while a query holds the only slot, they wait (and never
// reach storage) until their client gives up, and answer once the slot frees.
func TestEveryAPIPathIsAdmitted(t *testing.T) {
	hq := &holdingQueryable{SampleAndChunkQueryable: newBlockStore(t, fleetBlocks(t)), release: make(chan struct{})}
	opts := DefaultEngineOptions
	opts.MaxConcurrency = 1
	srv := serve(t, edgetelHandler(t, hq, Options{Engine: opts}))
	at := unix(testFleet.end().Add(-time.Minute))
	first := queryAsync(t, srv, `count(up)`, at)
	require.Eventually(t, func() bool { return hq.entered.Load() == 1 }, 10*time.Second, 5*time.Millisecond)

	paths := []string{"/api/v1/series?match[]=container_cpu_usage_seconds_total", "/api/v1/labels", "/api/v1/label/node/values"}
	for _, p := range paths {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv+p, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("%s answered while a query held the only slot: %d %s", p, resp.StatusCode, b)
		}
		require.ErrorIs(t, err, context.DeadlineExceeded, p)
	}
	assert.Zero(t, hq.others.Load(), "a queued request reached storage")

	close(hq.release)
	a := <-first
	assert.Equal(t, http.StatusOK, a.code, a.body)
	for _, p := range paths {
		code, body := get(t, srv, p, nil, false)
		assert.Equal(t, http.StatusOK, code, "%s: %s", p, body)
	}
}

// TestMaxResultsCapsSeriesAndLabels: /series, /labels and /label/<name>/values answer at most
// MaxResults entries, with Prometheus' truncation warning, whether the client asked for no limit
// or for a larger one; a smaller limit is kept.
func TestMaxResultsCapsSeriesAndLabels(t *testing.T) {
	srv := serve(t, edgetelHandler(t, newBlockStore(t, fleetBlocks(t)[:1]), Options{Engine: DefaultEngineOptions, MaxResults: 3}))
	cases := []struct {
		path   string
		params map[string]string
		want   int
	}{
		{"/api/v1/series", map[string]string{"match[]": "up"}, 3},
		{"/api/v1/series", map[string]string{"match[]": "up", "limit": "0"}, 3},
		{"/api/v1/series", map[string]string{"match[]": "up", "limit": "1000"}, 3},
		{"/api/v1/series", map[string]string{"match[]": "up", "limit": "2"}, 2},
		{"/api/v1/labels", nil, 3},
		{"/api/v1/label/node/values", nil, 3},
		{"/api/v1/label/__name__/values", map[string]string{"limit": "50"}, 3},
	}
	for _, c := range cases {
		for _, form := range []bool{false, true} {
			params := v()
			for k, val := range c.params {
				params.Set(k, val)
			}
			if form && strings.Contains(c.path, "/label/") {
				continue // label values are GET only, as in Prometheus
			}
			code, body := get(t, srv, c.path, params, form)
			require.Equal(t, http.StatusOK, code, body)
			var r struct {
				Data     []json.RawMessage `json:"data"`
				Warnings []string          `json:"warnings"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &r))
			assert.Len(t, r.Data, c.want, "%s %v form=%v", c.path, c.params, form)
			assert.Contains(t, r.Warnings, "results truncated due to limit", "%s %v", c.path, c.params)
		}
	}
	// A limit that does not parse is Prometheus' error, not silently replaced.
	code, body := get(t, srv, "/api/v1/labels", v("limit", "-1"), false)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, "bad_data", decode(t, body).ErrorType)
}

func withOrigin(t *testing.T, url, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// TestCORSOffByDefault: a page from another origin (any site the operator opens while a
// port-forward runs) cannot read answers: no Access-Control-Allow-Origin.
func TestCORSOffByDefault(t *testing.T) {
	srv := edgetelServer(t, fleetBlocks(t)[:1], DefaultEngineOptions)
	resp := withOrigin(t, srv+"/api/v1/query?query=1", "https://evil.example.com")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	resp = withOrigin(t, srv+"/api/v1/query?query=1", "null")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
}

// TestCORSOrigin: a configured origin regexp (anchored, as --web.cors.origin) lets Grafana's
// browser access read answers, and no other origin.
func TestCORSOrigin(t *testing.T) {
	c := Config{CORSOrigin: `https?://grafana\.example\.com`}
	re, err := c.corsRegexp()
	require.NoError(t, err)
	srv := serve(t, edgetelHandler(t, newBlockStore(t, fleetBlocks(t)[:1]), Options{Engine: DefaultEngineOptions, CORSOrigin: re}))
	resp := withOrigin(t, srv+"/api/v1/query?query=1", "https://grafana.example.com")
	assert.Equal(t, "https://grafana.example.com", resp.Header.Get("Access-Control-Allow-Origin"))
	for _, o := range []string{"https://grafana.example.com.evil.io", "https://evil.io/https://grafana.example.com"} {
		assert.Empty(t, withOrigin(t, srv+"/api/v1/query?query=1", o).Header.Get("Access-Control-Allow-Origin"), o)
	}
}

// startRun runs the whole server with c over the fleet's blocks and returns its base URL.
func startRun(t *testing.T, c Config, scheme string) string {
	t.Helper()
	bucketDir := t.TempDir()
	for _, b := range fleetBlocks(t)[:1] {
		copyDir(t, b, filepath.Join(bucketDir, filepath.Base(b)))
	}
	c.BucketDir = bucketDir
	c.CacheDir = t.TempDir()
	c.SyncInterval = 50 * time.Millisecond
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, nil, func(a net.Addr) { addrs <- a }) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	select {
	case a := <-addrs:
		return scheme + "://" + a.String()
	case err := <-done:
		t.Fatalf("Run: %v", err)
		return ""
	}
}

func do(t *testing.T, client *http.Client, url string, edit func(*http.Request)) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if edit != nil {
		edit(req)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func writeSecret(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// TestBearerToken: with --web.bearer-token-file, the API and /metrics need the token; probes
// do not.
func TestBearerToken(t *testing.T) {
	c := DefaultConfig()
	c.BearerTokenFile = writeSecret(t, "s3cret-token\n")
	base := startRun(t, c, "http")
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	for _, p := range []string{"/api/v1/query?query=1", "/api/v1/labels", "/metrics"} {
		code, h := do(t, http.DefaultClient, base+p, nil)
		assert.Equal(t, http.StatusUnauthorized, code, p)
		assert.Contains(t, h.Get("WWW-Authenticate"), "Bearer", p)
		code, _ = do(t, http.DefaultClient, base+p, bearer("wrong"))
		assert.Equal(t, http.StatusUnauthorized, code, p)
		code, _ = do(t, http.DefaultClient, base+p, func(r *http.Request) { r.SetBasicAuth("s3cret-token", "s3cret-token") })
		assert.Equal(t, http.StatusUnauthorized, code, p)
		code, _ = do(t, http.DefaultClient, base+p, bearer("s3cret-token"))
		assert.Equal(t, http.StatusOK, code, p)
	}
	for _, p := range []string{"/-/ready", "/-/healthy"} {
		code, _ := do(t, http.DefaultClient, base+p, nil)
		assert.Equal(t, http.StatusOK, code, p)
	}
	assert.Contains(t, scrapeText(t, base, bearer("s3cret-token")), "edgetel_query_http_unauthorized_requests_total 9")
}

// webConfigFile writes a web config (exporter-toolkit's format) with users' bcrypt hashes and,
// when certFile is set, TLS.
func webConfigFile(t *testing.T, certFile, keyFile string, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	if certFile != "" {
		fmt.Fprintf(&b, "tls_server_config:\n  cert_file: %s\n  key_file: %s\n", certFile, keyFile)
	}
	if len(users) > 0 {
		b.WriteString("basic_auth_users:\n")
		for u, p := range users {
			h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
			require.NoError(t, err)
			fmt.Fprintf(&b, "  %s: %s\n", u, h)
		}
	}
	return writeSecret(t, b.String())
}

// TestBasicAuthOverTLS: basic auth users with bcrypt hashes and TLS from a Prometheus web config
// (--web.config.file, served by exporter-toolkit), on a non-loopback address; the probe
// listener answers the kubelet without credentials and serves nothing else.
func TestBasicAuthOverTLS(t *testing.T) {
	c := DefaultConfig()
	c.Listen = "0.0.0.0:0"
	certPEM, cert, key := selfSigned(t)
	c.WebConfigFile = webConfigFile(t, cert, key, map[string]string{"alice": "wonder:land", "grafana": "pa55"})
	c.ProbeListen = freeAddr(t)
	base := startRun(t, c, "https")
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(certPEM))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "https://"))
	require.NoError(t, err)
	base = "https://127.0.0.1:" + port

	for _, p := range []string{"/api/v1/query?query=1", "/api/v1/series?match[]=up", "/metrics", "/-/ready"} {
		url := base + p
		code, h := do(t, client, url, nil)
		assert.Equal(t, http.StatusUnauthorized, code, p)
		assert.Contains(t, h.Get("WWW-Authenticate"), "Basic", p)
		for _, creds := range [][2]string{{"alice", "wonder"}, {"grafana", "pa55x"}, {"mallory", "pa55"}} {
			code, _ = do(t, client, url, func(r *http.Request) { r.SetBasicAuth(creds[0], creds[1]) })
			assert.Equal(t, http.StatusUnauthorized, code, creds)
		}
		for _, creds := range [][2]string{{"alice", "wonder:land"}, {"grafana", "pa55"}} {
			code, _ = do(t, client, url, func(r *http.Request) { r.SetBasicAuth(creds[0], creds[1]) })
			assert.Equal(t, http.StatusOK, code, creds)
		}
	}
	code, _ := do(t, http.DefaultClient, strings.Replace(base, "https", "http", 1)+"/api/v1/query?query=1", nil)
	assert.Equal(t, http.StatusBadRequest, code, "plain HTTP is not served")

	for p, want := range map[string]int{"/-/ready": 200, "/-/healthy": 200, "/api/v1/query?query=1": 404, "/metrics": 404} {
		code, _ := do(t, http.DefaultClient, "http://"+c.ProbeListen+p, nil)
		assert.Equal(t, want, code, "probe listener %s", p)
	}
}

func selfSigned(t *testing.T) (certPEM []byte, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edgetel-query"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certPEM, certFile, keyFile
}

func scrapeText(t *testing.T, base string, edit func(*http.Request)) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	require.NoError(t, err)
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestMetricsEndpoint: /metrics serves the engine's metrics under Prometheus' names and
// edgetel-query's own under edgetel_query_*, in Prometheus' text format.
func TestMetricsEndpoint(t *testing.T) {
	base := startRun(t, DefaultConfig(), "http")
	require.Eventually(t, func() bool {
		return strings.Contains(scrapeText(t, base, nil), "edgetel_query_cached_blocks 1")
	}, 20*time.Second, 20*time.Millisecond)
	at := unix(testFleet.base.Add(30 * time.Minute))
	code, body := get(t, base, "/api/v1/query", v("query", "count(up)", "time", at), false)
	require.Equal(t, http.StatusOK, code, body)
	code, _ = get(t, base, "/api/v1/query", v("query", "count(", "time", at), false)
	require.Equal(t, http.StatusBadRequest, code)
	get(t, base, "/api/v1/label/node/values", nil, false)

	text := scrapeText(t, base, nil)
	for _, want := range []string{
		`edgetel_query_http_requests_total{code="200",handler="/api/v1/query"} 1`,
		`edgetel_query_http_requests_total{code="400",handler="/api/v1/query"} 1`,
		`edgetel_query_http_requests_total{code="200",handler="/api/v1/label/:name/values"} 1`,
		`prometheus_engine_queries_concurrent_max 20`,
		`prometheus_engine_query_duration_seconds_count{slice="inner_eval"} 1`,
		`edgetel_query_bucket_syncs_total{result="success"}`,
		`edgetel_query_bucket_last_successful_sync_timestamp_seconds`,
		`edgetel_query_cache_bytes`,
		`go_goroutines`,
	} {
		assert.Contains(t, text, want)
	}
}
