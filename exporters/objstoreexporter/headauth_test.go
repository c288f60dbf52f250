package objstoreexporter

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/extension/extensiontest"
)

// extHost is a Collector host with extensions.
type extHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h extHost) GetExtensions() map[component.ID]component.Component { return h.exts }

// startWithAuthenticatedHead starts an exporter whose head API takes only the bearer token in
// a token file, as the chart configures it, and returns the API's base URL and the token.
func startWithAuthenticatedHead(t *testing.T, cfg *Config) (*objstoreExporter, string, string) {
	t.Helper()
	ctx := context.Background()
	const token = "s3cr3t-head-token"
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte(token+"\n"), 0o600))
	f := bearertokenauthextension.NewFactory()
	ecfg := f.CreateDefaultConfig().(*bearertokenauthextension.Config)
	ecfg.Filename = file
	id := component.MustNewIDWithName("bearertokenauth", "head")
	ext, err := f.Create(ctx, extensiontest.NewNopSettings(f.Type()), ecfg)
	require.NoError(t, err)
	host := extHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{id: ext}}
	require.NoError(t, ext.Start(ctx, host))
	t.Cleanup(func() { _ = ext.Shutdown(ctx) })

	srv := confighttp.NewDefaultServerConfig()
	srv.NetAddr.Endpoint = "127.0.0.1:0"
	srv.Auth = configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: id}})
	cfg.HeadAPI = configoptional.Some(HeadAPIConfig{ServerConfig: srv, MaxQueriesPerRequest: defaultMaxQueriesPerRequest, MaxSamplesPerRequest: defaultMaxSamplesPerRequest})
	e := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e.Start(ctx, host))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })
	return e, "http://" + e.head.listener.String(), token
}

func get(t *testing.T, u, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// Every endpoint of the head, remote read included, wants the token.
func TestHeadAPIWantsTheToken(t *testing.T) {
	_, base, token := startWithAuthenticatedHead(t, testConfig(t.TempDir()))
	for _, path := range []string{"/api/v1/status/config", "/api/v1/labels", "/metrics", "/-/ready"} {
		assert.Equal(t, http.StatusUnauthorized, get(t, base+path, ""), path)
		assert.Equal(t, http.StatusUnauthorized, get(t, base+path, "wrong"), path)
		assert.Equal(t, http.StatusOK, get(t, base+path, token), path)
	}
	code, body := remoteRead(t, base, token, 1)
	assert.Equal(t, http.StatusUnauthorized, func() int { c, _ := remoteRead(t, base, "", 1); return c }())
	assert.Equal(t, http.StatusOK, code, body)
}

// A head beyond loopback without auth is a configuration error: it would serve every sample
// not yet uploaded to anyone on the pod network.
func TestHeadAPIBeyondLoopbackNeedsAuth(t *testing.T) {
	cfg := testConfig(t.TempDir())
	for endpoint, ok := range map[string]bool{"localhost:9095": true, "127.0.0.1:9095": true, "[::1]:9095": true,
		"0.0.0.0:9095": false, "10.0.0.7:9095": false, ":9095": false} {
		srv := confighttp.NewDefaultServerConfig()
		srv.NetAddr.Endpoint = endpoint
		cfg.HeadAPI = configoptional.Some(HeadAPIConfig{ServerConfig: srv, MaxQueriesPerRequest: 1, MaxSamplesPerRequest: 1})
		err := cfg.Validate()
		if ok {
			assert.NoError(t, err, endpoint)
		} else {
			assert.ErrorContains(t, err, "set auth", endpoint)
		}
	}
}

// remoteRead posts one remote-read request of n match-all queries over the last hour
// (samples, not streamed: the answer is held whole in memory).
func remoteRead(t *testing.T, base, token string, n int) (int, string) {
	t.Helper()
	var req prompb.ReadRequest
	for range n {
		req.Queries = append(req.Queries, &prompb.Query{StartTimestampMs: t0 - hour, EndTimestampMs: t0 + hour,
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_RE, Name: "__name__", Value: ".+"}}})
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	hr, err := http.NewRequest(http.MethodPost, base+"/api/v1/read", bytes.NewReader(snappy.Encode(nil, raw)))
	require.NoError(t, err)
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf")
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(body)
	}
	return resp.StatusCode, ""
}

// One request of several match-all queries is bounded as a whole: too many queries are
// refused before any is run, and the queries share the request's sample bound.
func TestHeadAPIBoundsOneRequest(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e, base := startWithHeadAPI(t, cfg)
	in := newDataset(3, t0, t0+30*time.Minute.Milliseconds())
	for _, md := range in.batches {
		require.NoError(t, e.push(ctx, md))
	}
	total := len(in.before(t0 + hour))
	require.Greater(t, total, 100)

	code, body := remoteRead(t, base, "", defaultMaxQueriesPerRequest+1)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "max_queries_per_request")

	// A bound between one and two queries' worth: one query passes, two in one request do not.
	cfg2 := testConfig(t.TempDir())
	cfg2.HeadAPI = configoptional.Some(HeadAPIConfig{MaxQueriesPerRequest: 2, MaxSamplesPerRequest: total + total/2})
	e2, base2 := startWithHeadAPI(t, cfg2)
	for _, md := range in.batches {
		require.NoError(t, e2.push(ctx, md))
	}
	code, body = remoteRead(t, base2, "", 1)
	assert.Equal(t, http.StatusOK, code, body)
	code, body = remoteRead(t, base2, "", 2)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "exceeded sample limit")
}
