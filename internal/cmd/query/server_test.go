package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

func decode(t *testing.T, body string) apiResponse {
	t.Helper()
	var r apiResponse
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	return r
}

// vectorValue is the value of a one-element instant vector result, or "" if there is none.
func vectorValue(t *testing.T, body string) string {
	t.Helper()
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(decode(t, body).Data, &data), body)
	if len(data.Result) != 1 {
		return ""
	}
	s, _ := data.Result[0].Value[1].(string)
	return s
}

func TestSampleLimitCutsOffQuery(t *testing.T) {
	opts := DefaultEngineOptions
	opts.MaxSamples = 100
	srv := edgetelServer(t, fleetBlocks(t), opts)
	at := unix(testFleet.end().Add(-time.Minute))

	// 5 series x 240 samples in the hour: more than 100 in memory at once.
	code, body := get(t, srv, "/api/v1/query", v("query", "count_over_time(up[1h])", "time", at), false)
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	r := decode(t, body)
	assert.Equal(t, "error", r.Status)
	assert.Equal(t, "execution", r.ErrorType)
	assert.Contains(t, r.Error, "query processing would load too many samples into memory")

	code, body = get(t, srv, "/api/v1/query_range", v("query", "up", "start", unix(testFleet.base), "end", at, "step", "15"), false)
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	assert.Contains(t, decode(t, body).Error, "too many samples")

	// The server keeps answering queries within the limit.
	code, body = get(t, srv, "/api/v1/query", v("query", `sum(up{metrics_path="/metrics"})`, "time", at), false)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "5", vectorValue(t, body))
}

func TestTimeoutCutsOffQuery(t *testing.T) {
	opts := DefaultEngineOptions
	opts.Timeout = time.Nanosecond
	srv := edgetelServer(t, fleetBlocks(t), opts)
	at := unix(testFleet.end().Add(-time.Minute))

	// The deadline runs from the engine's exec, which first takes a slot of the active query
	// tracker: when the deadline has passed by then, Prometheus' tracker may return the context's
	// error (an execution error) instead of evaluating into its own timeout. Both cut the query off.
	for range 4 {
		code, body := get(t, srv, "/api/v1/query", v("query", "avg_over_time(container_memory_working_set_bytes[3h])", "time", at), false)
		r := decode(t, body)
		if r.ErrorType == "execution" {
			assert.Equal(t, http.StatusUnprocessableEntity, code)
			assert.Contains(t, r.Error, "context deadline exceeded")
			continue
		}
		assert.Equal(t, http.StatusServiceUnavailable, code)
		assert.Equal(t, "timeout", r.ErrorType)
		assert.Contains(t, r.Error, "query timed out")
	}
	// Requests that do not run the engine still answer.
	code, body := get(t, srv, "/api/v1/label/node/values", nil, false)
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `["edge-0","edge-1","edge-2","edge-3","edge-4"]`, string(decode(t, body).Data))
}

func TestOnlyQueryRoutesAreServed(t *testing.T) {
	srv := edgetelServer(t, fleetBlocks(t)[:1], DefaultEngineOptions)
	for _, p := range []string{"/api/v1/targets", "/api/v1/write", "/api/v1/admin/tsdb/snapshot", "/api/v1/status/config", "/api/v1/rules/x", "/api/v2/query", "/"} {
		code, _ := get(t, srv, p, nil, false)
		assert.Equal(t, http.StatusNotFound, code, p)
	}
	code, body := get(t, srv, "/api/v1/status/buildinfo", nil, false)
	require.Equal(t, http.StatusOK, code)
	var info map[string]string
	require.NoError(t, json.Unmarshal(decode(t, body).Data, &info))
	assert.Regexp(t, `^3\.\d+\.\d+$`, info["version"], "Grafana reads the Prometheus version")
	assert.Contains(t, info, "goVersion")
}

func TestNewHandlerRejectsMissingLimits(t *testing.T) {
	for _, o := range []EngineOptions{
		{Timeout: time.Second, LookbackDelta: time.Minute, MaxConcurrency: 1},
		{MaxSamples: 1, LookbackDelta: time.Minute, MaxConcurrency: 1},
		{MaxSamples: 1, Timeout: time.Second, MaxConcurrency: 1},
		{MaxSamples: 1, Timeout: time.Second, LookbackDelta: time.Minute},
	} {
		_, err := NewHandler(nil, Options{Engine: o, ActiveQueryDir: t.TempDir()}, nil)
		assert.Error(t, err, "%+v", o)
	}
	_, err := NewHandler(nil, Options{Engine: DefaultEngineOptions}, nil)
	assert.ErrorContains(t, err, "active query log directory")
}

// TestPromVersionMatchesGoMod keeps the reported version in step with the linked engine.
func TestPromVersionMatchesGoMod(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join("..", "..", "..", "go.mod"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s*github\.com/prometheus/prometheus (v0\.3(\d+)\.(\d+))`).FindSubmatch(gomod)
	require.NotNil(t, m, "prometheus in go.mod")
	minor, _ := strconv.Atoi(string(m[2]))
	assert.Equal(t, fmt.Sprintf("3.%d.%s", minor, m[3]), PrometheusVersion, "update PrometheusVersion with go.mod's %s", m[1])
}

// TestRunServesAndStops runs the whole server as the command does: a FILESYSTEM bucket directory,
// a cache directory, a sync loop and an HTTP listener on loopback.
func TestRunServesAndStops(t *testing.T) {
	bucketDir := t.TempDir()
	for _, b := range fleetBlocks(t) {
		copyDir(t, b, filepath.Join(bucketDir, filepath.Base(b)))
	}
	c := DefaultConfig()
	c.BucketDir = bucketDir
	runAndQuery(t, c)
}

// TestRunWithBucketConfigFile reads the bucket from Thanos objstore YAML, with a prefix, as the
// objstore exporter writes it.
func TestRunWithBucketConfigFile(t *testing.T) {
	root := t.TempDir()
	for _, b := range fleetBlocks(t) {
		copyDir(t, b, filepath.Join(root, "tenant-a", filepath.Base(b)))
	}
	conf := filepath.Join(t.TempDir(), "bucket.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("type: FILESYSTEM\nconfig:\n  directory: "+root+"\nprefix: tenant-a\n"), 0o600))
	c := DefaultConfig()
	c.BucketConfig = conf
	c.BucketDir = filepath.Join(t.TempDir(), "not-used")
	runAndQuery(t, c)
}

func runAndQuery(t *testing.T, c Config) {
	t.Helper()
	c.Listen = "127.0.0.1:0"
	c.CacheDir = t.TempDir()
	c.SyncInterval = 50 * time.Millisecond

	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, c, nil, func(a net.Addr) { addrs <- a }) }()
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	query := `count(count by (node) (up{job="kubeedge"} == 1))`
	// The blocks come in over the first sync: wait until each of them answers.
	require.Eventually(t, func() bool {
		for h := range testFleet.blocks {
			at := v("query", query, "time", unix(testFleet.base.Add(time.Duration(h)*time.Hour+time.Minute)))
			code, body := get(t, base, "/api/v1/query", at, false)
			if code != http.StatusOK || vectorValue(t, body) != "5" {
				return false
			}
		}
		return true
	}, 20*time.Second, 50*time.Millisecond)
	code, _ := get(t, base, "/-/ready", nil, false)
	assert.Equal(t, http.StatusOK, code)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	_, err := http.Get(base + "/-/ready")
	assert.Error(t, err, "listener closed")
	entries, err := filepath.Glob(filepath.Join(c.CacheDir, "01*"))
	require.NoError(t, err)
	assert.Len(t, entries, 3, "cached blocks stay for the next start")
	assert.FileExists(t, filepath.Join(c.CacheDir, "queries.active"), "the active query log is in the cache directory")
}

func TestRunRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	base := DefaultConfig()
	base.CacheDir = t.TempDir()
	base.Listen = "127.0.0.1:0"
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"missing bucket config", func(c *Config) { c.BucketConfig = filepath.Join(dir, "nope.yaml") }, "read bucket config"},
		{"unknown bucket type", func(c *Config) { c.BucketConfig = write("t.yaml", "type: FTP\nconfig: {}\n") }, "not supported"},
		{"unknown key", func(c *Config) {
			c.BucketConfig = write("k.yaml", "type: FILESYSTEM\nconfig: {directory: /tmp/x}\nbogus: 1\n")
		}, "bogus"},
		{"no bucket", func(c *Config) { c.BucketDir = "" }, "bucket config file or a bucket directory is required"},
		{"bad listen", func(c *Config) { c.BucketDir = t.TempDir(); c.Listen = "127.0.0.1:notaport" }, "listen"},
		{"zero sync interval", func(c *Config) { c.SyncInterval = 0 }, "sync interval"},
		{"zero cache bound", func(c *Config) { c.BucketDir = t.TempDir(); c.CacheMaxBytes = 0 }, "cache max bytes"},
		{"zero max samples", func(c *Config) { c.BucketDir = t.TempDir(); c.Engine.MaxSamples = 0 }, "max samples"},
		{"zero max concurrency", func(c *Config) { c.BucketDir = t.TempDir(); c.Engine.MaxConcurrency = 0 }, "max concurrency"},
		{"negative max results", func(c *Config) { c.BucketDir = t.TempDir(); c.MaxResults = -1 }, "max results"},
		{"bad CORS origin", func(c *Config) { c.BucketDir = t.TempDir(); c.CORSOrigin = "(" }, "CORS origin"},
		{"missing token file", func(c *Config) { c.BucketDir = t.TempDir(); c.BearerTokenFile = filepath.Join(dir, "nope") }, "bearer token file"},
		{"empty token file", func(c *Config) { c.BucketDir = t.TempDir(); c.BearerTokenFile = write("empty", "\n") }, "is empty"},
		{"plain-text password", func(c *Config) {
			c.BucketDir = t.TempDir()
			c.WebConfigFile = write("web-plain.yml", "basic_auth_users:\n  alice: wonderland\n")
		}, "hashedSecret too short"},
		{"unknown web config key", func(c *Config) { c.BucketDir = t.TempDir(); c.WebConfigFile = write("web-k.yml", "bogus: 1\n") }, "bogus"},
		{"cert without key", func(c *Config) {
			c.BucketDir = t.TempDir()
			c.WebConfigFile = write("web-c.yml", "tls_server_config:\n  cert_file: "+write("c.pem", "x")+"\n")
		}, "missing one of key or key_file"},
		{"bearer token and users", func(c *Config) {
			c.BucketDir = t.TempDir()
			c.BearerTokenFile = write("token", "s3cret\n")
			c.WebConfigFile = write("web-u.yml", "basic_auth_users:\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n")
		}, "exclude each other"},
		{"token in clear text", func(c *Config) {
			c.BucketDir = t.TempDir()
			c.Listen = "0.0.0.0:0"
			c.BearerTokenFile = write("token", "s3cret\n")
		}, "clear text"},
		{"users in clear text", func(c *Config) {
			c.BucketDir = t.TempDir()
			c.Listen = "0.0.0.0:0"
			c.WebConfigFile = write("web-u.yml", "basic_auth_users:\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n")
		}, "clear text"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := Run(ctx, c, nil, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.False(t, errors.Is(err, context.DeadlineExceeded))
		})
	}
}
