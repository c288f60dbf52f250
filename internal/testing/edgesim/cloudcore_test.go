package edgesim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What real cloudcore (kubeedge 16cd8548eedb, its cloudstream servers and edgestream client)
// was seen doing, case by case; docs/kubeedge.md §2.4.

func TestTunnelMovesBetweenCloudcores(t *testing.T) {
	s := startSim(t, Config{Nodes: 2, Cloudcores: 2, ManualStep: true})
	c := client(t, s, false)
	addrs := s.Addrs()
	require.Len(t, addrs, 2)
	n := s.Fleet().Nodes[0]
	require.Equal(t, 0, s.TunnelOwner(n.Name))
	want := s.Expected(n.Name, "/metrics")

	code, body, err := tryGetAt(c, addrs[1], n.Address(), "/metrics")
	require.NoError(t, err)
	assert.Equal(t, http.StatusInternalServerError, code, "never held the session")
	assert.Empty(t, body)

	require.NoError(t, s.MoveTunnel(n.Name, 1))
	code, body, err = tryGetAt(c, addrs[0], n.Address(), "/metrics")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "the closed session is kept")
	assert.Empty(t, body)
	code, body, err = tryGetAt(c, addrs[1], n.Name, "/metrics")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, want, body)
	assert.Equal(t, int64(1), s.Stats().StaleSession)

	assert.Error(t, s.MoveTunnel(n.Name, 2))
	assert.Error(t, s.MoveTunnel("nope", 0))
	assert.Equal(t, 1, s.TunnelOwner(s.Fleet().Nodes[1].Name), "nodes start spread over the replicas")
}

func TestDeadKubeletHangsThroughTheTunnel(t *testing.T) {
	s := startSim(t, Config{Nodes: 1, ManualStep: true, Direct: true})
	n := s.Fleet().Nodes[0]
	s.SetKubeletDown(n.Name, true)
	c := client(t, s, false)
	c.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, _, err := tryGet(c, s, n.Address(), "/metrics")
	require.Error(t, err, "no status, no body: the client's own timeout ends it")
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	assert.Equal(t, int64(1), s.Stats().Hung)

	// Directly, nothing answers on the kubelet port.
	_, err = http.Get("http://" + n.Direct + "/metrics")
	require.Error(t, err)

	s.SetKubeletDown(n.Name, false)
	code, body := get(t, client(t, s, false), s, n.Address(), "/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, s.Expected(n.Name, "/metrics"), body)
}

func TestLongLineEndsTheRelayedBody(t *testing.T) {
	s := startSim(t, Config{Nodes: 1, ManualStep: true, Direct: true})
	n := s.Fleet().Nodes[0]
	full := s.Expected(n.Name, "/metrics/cadvisor")
	s.SetLongLine(n.Name, 70000)
	withLong := s.Expected(n.Name, "/metrics/cadvisor")
	i := bytes.Index(withLong, []byte("# TYPE edgesim_long_line"))
	require.Positive(t, i)
	require.Equal(t, 70000, bytes.IndexByte(withLong[i+len("# TYPE edgesim_long_line gauge\n"):], '\n')+1)

	code, body := get(t, client(t, s, false), s, n.Address(), "/metrics/cadvisor")
	assert.Equal(t, http.StatusOK, code, "a clean 200")
	assert.Equal(t, string(full[:i]), string(body), "ends at the line before the long one")
	assert.True(t, bytes.HasSuffix(body, []byte("\n")), "at a line boundary")
	assert.Equal(t, int64(1), s.Stats().LongLine)

	resp, err := http.Get("http://" + n.Direct + "/metrics/cadvisor")
	require.NoError(t, err)
	direct, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, withLong, direct, "served directly the line arrives whole")
	_, err = parseText(direct)
	require.NoError(t, err)
}

func TestEdgeRelay(t *testing.T) {
	assert.Equal(t, "a 1\nb 2\n", string(edgeRelay([]byte("a 1\r\nb 2"))), "\\r\\n becomes \\n and a final newline is added")
	in := []byte("a 1\n")
	assert.Same(t, &in[0], &edgeRelay(in)[0], "a body that needs nothing is not copied")
	long := "a 1\n" + strings.Repeat("x", edgeMaxLine) + "\nb 2\n"
	assert.Equal(t, long, string(edgeRelay([]byte(long))), "64 KiB - 1 still fits the scanner")
	long = "a 1\n" + strings.Repeat("x", edgeMaxLine+1) + "\nb 2\n"
	assert.Equal(t, "a 1\n", string(edgeRelay([]byte(long))))
	assert.Empty(t, edgeRelay([]byte(strings.Repeat("x", edgeMaxLine+1))))
}

func TestRelayedContentTypeIsSniffed(t *testing.T) {
	s := startSim(t, Config{Nodes: 1, ManualStep: true})
	n := s.Fleet().Nodes[0]
	c := client(t, s, false)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+s.Addr()+"/metrics/cadvisor", nil)
	require.NoError(t, err)
	req.Host = n.Address()
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	// The kubelet's own type is not relayed: Go sniffs the first line, so OpenMetrics cannot be
	// negotiated through cloudcore.
	assert.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
}

func TestAdminCloudcoreFaults(t *testing.T) {
	s := startSim(t, Config{Nodes: 2, Cloudcores: 2, ManualStep: true, AdminListen: "127.0.0.1:0"})
	admin := "http://" + s.AdminAddr()
	post := func(path string, form url.Values) int {
		resp, err := http.PostForm(admin+path, form)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	n := s.Fleet().Nodes[0].Name
	assert.Equal(t, http.StatusOK, post("/api/move-tunnel", url.Values{"node": {n}, "cloudcore": {"1"}}))
	assert.Equal(t, 1, s.TunnelOwner(n))
	assert.Equal(t, http.StatusBadRequest, post("/api/move-tunnel", url.Values{"node": {n}, "cloudcore": {"2"}}))
	assert.Equal(t, http.StatusOK, post("/api/kubelet-down", url.Values{"node": {n}, "on": {"true"}}))
	assert.True(t, s.faults.kubeletDown[0].Load())
	assert.Equal(t, http.StatusOK, post("/api/long-line", url.Values{"node": {n}, "bytes": {"70000"}}))
	assert.Equal(t, int32(70000), s.faults.longLine[0].Load())
	assert.Equal(t, http.StatusBadRequest, post("/api/long-line", url.Values{"node": {n}, "bytes": {"-1"}}))
}
