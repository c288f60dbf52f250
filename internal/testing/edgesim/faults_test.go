package edgesim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

func TestRouting(t *testing.T) {
	s := startSim(t, Config{Nodes: 5, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	n := s.Fleet().Nodes[2]
	want := s.Expected(n.Name, "/metrics")

	for name, host := range map[string]string{"ip:port": n.Address(), "ip": n.IP, "name": n.Name, "name:port": n.Name + ":10350"} {
		code, body := get(t, c, s, host, "/metrics")
		assert.Equal(t, http.StatusOK, code, name)
		assert.Equal(t, want, body, name)
	}

	// kube-apiserver's node proxy: Host is cloudcore's, the node comes from X-Forwarded-Uri.
	code, body := get(t, c, s, s.Addr(), "/metrics", "X-Forwarded-Uri", "/api/v1/nodes/"+n.Name+"/proxy/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, want, body)
	// With <name>:<port> in the path cloudcore's lookup fails (docs/kubeedge.md §2.2).
	code, body = get(t, c, s, s.Addr(), "/metrics", "X-Forwarded-Uri", "/api/v1/nodes/"+n.Name+":10350/proxy/metrics")
	assert.Equal(t, http.StatusInternalServerError, code)
	assert.Empty(t, body)
	// Too few segments: the header is ignored and Host decides.
	code, _ = get(t, c, s, n.Address(), "/metrics", "X-Forwarded-Uri", "/api/v1/nodes/nope")
	assert.Equal(t, http.StatusOK, code)

	code, body = get(t, c, s, "10.9.9.9:10350", "/metrics/cadvisor")
	assert.Equal(t, http.StatusInternalServerError, code, "unknown node")
	assert.Empty(t, body)

	code, body = get(t, c, s, n.Address(), "/pods")
	assert.Equal(t, http.StatusNotFound, code, "not routed by cloudcore")
	assert.Equal(t, "404 page not found\n", string(body), "outside go-restful's roots: Go's ServeMux")
	code, body = get(t, c, s, n.Address(), "/metrics/nope")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "404: Page Not Found", string(body), "under a go-restful root: go-restful's")

	code, body = get(t, c, s, n.Address(), "/stats/container")
	assert.Equal(t, http.StatusOK, code, "routed, but edged no longer serves it")
	assert.Equal(t, "404 page not found\n", string(body))

	code, body = get(t, c, s, n.Address(), "/metrics/probes")
	assert.Equal(t, http.StatusOK, code)
	_, err := parseText(body)
	assert.NoError(t, err)

	req, _ := http.NewRequest(http.MethodPost, "https://"+s.Addr()+"/stats/summary", nil)
	req.Host = n.Address()
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "cloudcore routes GET only")
}

func TestDisconnect(t *testing.T) {
	s := startSim(t, Config{Nodes: 20, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	nodes := s.Fleet().Nodes
	s.Disconnect(nodes[0].Name, nodes[1].IP)
	for _, n := range nodes[:2] {
		for _, path := range endpointPaths {
			code, body := get(t, c, s, n.Address(), path)
			assert.Equal(t, http.StatusInternalServerError, code)
			assert.Empty(t, body)
		}
	}
	code, _ := get(t, c, s, nodes[2].Address(), "/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.ElementsMatch(t, []string{nodes[0].Name, nodes[1].Name}, s.Disconnected())

	s.Reconnect(nodes[0].Name)
	code, _ = get(t, c, s, nodes[0].Address(), "/metrics")
	assert.Equal(t, http.StatusOK, code)

	s.ReconnectAll()
	got := s.DisconnectFraction(0.25)
	assert.Len(t, got, 5)
	for _, name := range got {
		code, body := get(t, c, s, name, "/metrics/resource")
		assert.Equal(t, http.StatusInternalServerError, code)
		assert.Empty(t, body)
	}
	assert.Equal(t, got, s.Disconnected())
	assert.Empty(t, s.DisconnectFraction(0))
	assert.Len(t, s.DisconnectFraction(1), 15, "only connected nodes are picked")
}

func TestTunnelClosedAndStats(t *testing.T) {
	s := startSim(t, Config{Nodes: 3, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	n := s.Fleet().Nodes[0]
	s.SetTunnelClosed(n.Name, true)
	code, body := get(t, c, s, n.Address(), "/metrics/cadvisor")
	assert.Equal(t, http.StatusOK, code, "cloudcore keeps the session of a closed tunnel")
	assert.Empty(t, body)
	s.Reconnect(n.Name)
	code, body = get(t, c, s, n.Address(), "/metrics/cadvisor")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, s.Expected(n.Name, "/metrics/cadvisor"), body)
	get(t, c, s, "nowhere", "/metrics")
	get(t, c, s, n.Address(), "/pods")
	assert.Equal(t, Stats{Bodies: 1, Bytes: int64(len(body)), NoSession: 1, NotRouted: 1, StaleSession: 1}, s.Stats())
}

func TestErrorRateTruncatesBehind200(t *testing.T) {
	s := startSim(t, Config{Nodes: 3, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	n := s.Fleet().Nodes[0]
	full := s.Expected(n.Name, "/metrics/cadvisor")
	s.SetErrorRate(1)
	for i := 0; i < 5; i++ {
		code, body := get(t, c, s, n.Address(), "/metrics/cadvisor") // no transport error: the response ends cleanly
		assert.Equal(t, http.StatusOK, code)
		assert.Less(t, len(body), len(full))
		assert.True(t, bytes.HasPrefix(full, body))
		assert.True(t, len(body) == 0 || body[len(body)-1] == '\n', "cut at a line boundary")
	}
	s.SetErrorRate(0)
	_, body := get(t, c, s, n.Address(), "/metrics/cadvisor")
	assert.Equal(t, full, body)
}

func TestLatencyBeforeStatus(t *testing.T) {
	s := startSim(t, Config{Nodes: 2, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	n := s.Fleet().Nodes[0]
	s.SetLatency(300 * time.Millisecond)
	req, _ := http.NewRequest(http.MethodGet, "https://"+s.Addr()+"/metrics/resource", nil)
	req.Host = n.Address()
	start := time.Now()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	headers := time.Since(start)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	// cloudcore calls WriteHeader(200) before it asks the edge, but Go sends the status only with
	// the first relayed line (seen: a client waits for the headers as long as the edge takes).
	assert.GreaterOrEqual(t, headers, 300*time.Millisecond, "cloudcore's 200 goes out with the edge's first line")
	assert.Equal(t, s.Expected(n.Name, "/metrics/resource"), body)
}

func TestSlowBody(t *testing.T) {
	s := startSim(t, Config{Nodes: 2, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	n := s.Fleet().Nodes[1]
	s.SetSlowBody(n.Name, 400*time.Millisecond)
	start := time.Now()
	code, body := get(t, c, s, n.Address(), "/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.GreaterOrEqual(t, time.Since(start), 380*time.Millisecond)
	assert.Equal(t, s.Expected(n.Name, "/metrics"), body)

	// A client that gives up mid-body gets a truncated read.
	c.Timeout = 100 * time.Millisecond
	_, partial, err := tryGet(c, s, n.Address(), "/metrics")
	assert.True(t, err != nil || len(partial) < len(body), "a client that gives up after 100ms has the whole body")
}

func TestMalformed(t *testing.T) {
	s := startSim(t, Config{Nodes: 2, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	n := s.Fleet().Nodes[0]
	s.SetMalformed(n.Name, true)
	for _, path := range textPaths {
		code, body := get(t, c, s, n.Address(), path)
		assert.Equal(t, http.StatusOK, code)
		_, err := parseText(body)
		assert.Error(t, err, path)
	}
	_, body := get(t, c, s, n.Address(), "/stats/summary")
	_, err := parseSummary(body)
	assert.Error(t, err)
	// The other node is unaffected, and switching off restores it.
	_, body = get(t, c, s, s.Fleet().Nodes[1].Address(), "/metrics/cadvisor")
	_, err = parseText(body)
	assert.NoError(t, err)
	s.SetMalformed(n.Name, false)
	_, body = get(t, c, s, n.Address(), "/metrics/cadvisor")
	_, err = parseText(body)
	assert.NoError(t, err)
}

func TestExplosion(t *testing.T) {
	s := startSim(t, Config{Nodes: 2, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	n := s.Fleet().Nodes[0]
	_, body := get(t, c, s, n.Address(), "/metrics/cadvisor")
	before, err := parseText(body)
	require.NoError(t, err)
	s.SetExplosion(n.Name, 5000)
	_, body = get(t, c, s, n.Address(), "/metrics/cadvisor")
	after, err := parseText(body)
	require.NoError(t, err)
	assert.Len(t, after, len(before)+5000)
	s.Advance(1)
	_, body = get(t, c, s, n.Address(), "/metrics/cadvisor")
	next, err := parseText(body)
	require.NoError(t, err)
	renewed := 0
	for series := range next {
		if _, seen := after[series]; !seen && strings.Contains(series, "edgesim_exploded_series") {
			renewed++
		}
	}
	assert.Equal(t, 5000, renewed, "a bomb's series are new at every step")
	s.SetExplosion(n.Name, 0)
	_, body = get(t, c, s, n.Address(), "/metrics/cadvisor")
	again, err := parseText(body)
	require.NoError(t, err)
	assert.Len(t, again, len(before))
}

// TestValuesMove checks that counters grow, gauges move and pods come and go across steps.
func TestValuesMove(t *testing.T) {
	s := startSim(t, Config{Nodes: 3, Seed: 3, ManualStep: true})
	name := s.Fleet().Nodes[0].Name
	first, err := parseText(s.Expected(name, "/metrics/cadvisor"))
	require.NoError(t, err)
	s.Advance(1)
	second, err := parseText(s.Expected(name, "/metrics/cadvisor"))
	require.NoError(t, err)
	var grew, shrank, moved int
	for k, v := range first {
		w, ok := second[k]
		if !ok {
			continue
		}
		switch {
		case strings.Contains(k, `__name__="container_cpu_usage_seconds_total"`) && w > v:
			grew++
		case strings.Contains(k, `__name__="container_cpu_usage_seconds_total"`) && w < v:
			shrank++
		case strings.Contains(k, `__name__="container_memory_working_set_bytes"`) && w != v:
			moved++
		}
	}
	assert.Positive(t, grew, "counters grow")
	assert.Zero(t, shrank, "counters never go back within a pod's life")
	assert.Positive(t, moved, "gauges move")

	pods := func(series map[string]float64) map[string]bool {
		out := map[string]bool{}
		for k := range series {
			if i := strings.Index(k, `pod="`); i >= 0 {
				p := k[i+5:]
				out[p[:strings.IndexByte(p, '"')]] = true
			}
		}
		return out
	}
	start := pods(first)
	s.Advance(500) // longer than any pod's life
	later, err := parseText(s.Expected(name, "/metrics/cadvisor"))
	require.NoError(t, err)
	end := pods(later)
	var gone int
	for p := range start {
		if p != "" && !end[p] {
			gone++
		}
	}
	assert.Positive(t, gone, "pods come and go")
	assert.Equal(t, len(start), len(end), "the node keeps its pod count")
}

func TestSameSeedSameFleet(t *testing.T) {
	a := startSim(t, Config{Nodes: 50, Seed: 42, ManualStep: true})
	b := startSim(t, Config{Nodes: 50, Seed: 42, ManualStep: true})
	other := startSim(t, Config{Nodes: 50, Seed: 43, ManualStep: true})
	assert.Equal(t, a.Fleet(), b.Fleet())
	assert.NotEqual(t, a.Fleet(), other.Fleet())
	for _, n := range a.Fleet().Nodes {
		assert.Equal(t, "", n.Labels[kube.LabelEdgeRole])
		assert.NotEmpty(t, n.Labels[kube.LabelRegion])
		assert.NotEmpty(t, n.Labels[kube.LabelSite])
		assert.NotEmpty(t, n.Labels[kube.LabelNodeGroup])
		assert.Equal(t, kube.DefaultKubeletPort, n.Port)
		ip := net.ParseIP(n.IP)
		require.NotNil(t, ip)
		assert.True(t, ip.IsPrivate(), n.IP)
	}
	// Pods and values differ per seed too, not only labels.
	assert.NotEqual(t, a.Expected("edge-00001", "/stats/summary"), other.Expected("edge-00001", "/stats/summary"))
}

func TestFleetFileAndDirect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.json")
	s := startSim(t, Config{Nodes: 10, Seed: 5, ManualStep: true, Direct: true, FleetFile: path, KubeletPort: 10351})
	f, err := fleet.Load(path)
	require.NoError(t, err)
	assert.Equal(t, s.Fleet(), f)
	require.Len(t, f.Nodes, 10)
	n := f.Nodes[4]
	assert.Equal(t, 10351, n.Port)
	require.NotEmpty(t, n.Direct)

	resp, err := http.Get("http://" + n.Direct + "/metrics/cadvisor")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, s.Expected(n.Name, "/metrics/cadvisor"), body)

	resp, err = http.Get("http://" + n.Direct + "/pods")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "edged's own 404 keeps its status directly")

	// A disconnected tunnel does not stop the edge serving itself.
	s.Disconnect(n.Name)
	resp, err = http.Get("http://" + n.Direct + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// Directly, an edge failure mid-body breaks the connection.
	s.SetErrorRate(1)
	resp, err = http.Get("http://" + n.Direct + "/metrics/cadvisor")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	assert.Error(t, err)
}

func TestClientCertRequired(t *testing.T) {
	s := startSim(t, Config{Nodes: 2, Seed: 3, RequireClientCert: true})
	n := s.Fleet().Nodes[0]
	_, _, err := tryGet(client(t, s, false), s, n.Address(), "/metrics")
	assert.Error(t, err, "no client certificate")
	code, _ := get(t, client(t, s, true), s, n.Address(), "/metrics")
	assert.Equal(t, http.StatusOK, code)
}

func TestAdminAPI(t *testing.T) {
	s := startSim(t, Config{Nodes: 10, Seed: 3, ManualStep: true, AdminListen: "127.0.0.1:0"})
	c := client(t, s, false)
	admin := "http://" + s.AdminAddr()
	post := func(path string, form url.Values) (int, map[string]any) {
		resp, err := http.PostForm(admin+path, form)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}
	nodes := s.Fleet().Nodes

	code, out := post("/api/disconnect", url.Values{"nodes": {nodes[0].Name + "," + nodes[1].IP}})
	assert.Equal(t, http.StatusOK, code, out)
	assert.ElementsMatch(t, []string{nodes[0].Name, nodes[1].Name}, s.Disconnected())
	status, _ := get(t, c, s, nodes[0].Address(), "/metrics")
	assert.Equal(t, http.StatusInternalServerError, status)
	// cloudcore's own metrics endpoint counts the nodes that hold a tunnel.
	resp, err := http.Get(admin + "/metrics")
	require.NoError(t, err)
	exposition, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.Contains(t, string(exposition), "\nKubeEdge_CloudHub_connected_nodes 8\n")
	assert.Contains(t, string(exposition), "\nprocess_resident_memory_bytes ")

	code, out = post("/api/disconnect", url.Values{"nodes": {"edge-99999"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, out["error"], "edge-99999")

	code, _ = post("/api/reconnect", url.Values{"all": {"true"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, s.Disconnected())

	// A whole site: every node whose zone label names it, and only those.
	site := nodes[0].Labels[kube.LabelSite]
	var inSite []string
	for _, n := range nodes {
		if n.Labels[kube.LabelSite] == site {
			inSite = append(inSite, n.Name)
		}
	}
	code, out = post("/api/disconnect", url.Values{"site": {site}})
	assert.Equal(t, http.StatusOK, code, out)
	assert.ElementsMatch(t, inSite, s.Disconnected())
	code, _ = post("/api/reconnect", url.Values{"site": {site}})
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, s.Disconnected())
	code, out = post("/api/disconnect", url.Values{"site": {"nowhere"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, out["error"], `site "nowhere"`)

	code, out = post("/api/disconnect", url.Values{"fraction": {"0.5"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Len(t, out["disconnected"], 5)
	code, _ = post("/api/disconnect", url.Values{"fraction": {"2"}})
	assert.Equal(t, http.StatusBadRequest, code)
	code, _ = post("/api/reconnect", url.Values{"nodes": {strings.Join(s.Disconnected(), ",")}})
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, s.Disconnected())

	code, _ = post("/api/latency", url.Values{"duration": {"5ms"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, int64(5*time.Millisecond), s.faults.latency.Load())
	code, out = post("/api/latency", url.Values{"duration": {"soon"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, out["error"], "duration")

	code, _ = post("/api/error-rate", url.Values{"rate": {"0.25"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, 0.25, s.errorRate())
	code, _ = post("/api/error-rate", url.Values{"rate": {"1.5"}})
	assert.Equal(t, http.StatusBadRequest, code)
	post("/api/error-rate", url.Values{"rate": {"0"}})

	code, _ = post("/api/slow-body", url.Values{"node": {nodes[2].Name}, "duration": {"1s"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, int64(time.Second), s.faults.slowBody[2].Load())
	code, _ = post("/api/slow-body", url.Values{"duration": {"1s"}})
	assert.Equal(t, http.StatusBadRequest, code, "node missing")

	code, _ = post("/api/malformed", url.Values{"node": {nodes[3].Name}, "on": {"true"}})
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, s.faults.malformed[3].Load())
	code, _ = post("/api/malformed", url.Values{"node": {nodes[3].Name}, "on": {"maybe"}})
	assert.Equal(t, http.StatusBadRequest, code)

	code, _ = post("/api/tunnel-closed", url.Values{"node": {nodes[6].Name}, "on": {"true"}})
	assert.Equal(t, http.StatusOK, code)
	status, body := get(t, c, s, nodes[6].Address(), "/metrics")
	assert.Equal(t, http.StatusOK, status)
	assert.Empty(t, body)

	code, _ = post("/api/explosion", url.Values{"node": {nodes[4].Name}, "series": {"100"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, int32(100), s.faults.explosion[4].Load())
	code, _ = post("/api/explosion", url.Values{"node": {nodes[4].Name}, "series": {"-1"}})
	assert.Equal(t, http.StatusBadRequest, code)

	step := s.Step()
	code, _ = post("/api/advance", url.Values{"steps": {"3"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, step+3, s.Step())

	resp, err = http.Get(admin + "/api/expected?node=" + nodes[5].Name + "&path=/metrics/resource")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	_, served := get(t, c, s, nodes[5].Address(), "/metrics/resource")
	assert.Equal(t, served, body)

	resp, err = http.Get(admin + "/api/nodes")
	require.NoError(t, err)
	var statuses []NodeStatus
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&statuses))
	resp.Body.Close()
	require.Len(t, statuses, 10)
	assert.True(t, statuses[3].Malformed)
	assert.True(t, statuses[6].Closed)

	resp, err = http.Get(admin + "/api/stats")
	require.NoError(t, err)
	var st Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	resp.Body.Close()
	assert.Equal(t, s.Stats(), st)
	assert.Positive(t, st.Bodies)
	assert.Equal(t, 100, statuses[4].Explosion)
	assert.GreaterOrEqual(t, statuses[0].Pods, 3)
	assert.LessOrEqual(t, statuses[0].Pods, 30)
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, cfg := range map[string]Config{
		"no nodes":         {Nodes: 0, Listen: "127.0.0.1:0", TLSDir: dir},
		"too many nodes":   {Nodes: 10001, Listen: "127.0.0.1:0", TLSDir: dir},
		"no listen":        {Nodes: 1, TLSDir: dir},
		"no tls dir":       {Nodes: 1, Listen: "127.0.0.1:0"},
		"public admin":     {Nodes: 1, Listen: "127.0.0.1:0", TLSDir: dir, AdminListen: "0.0.0.0:0"},
		"bad kubelet port": {Nodes: 1, Listen: "127.0.0.1:0", TLSDir: dir, KubeletPort: 70000},
		"no fixtures":      {Nodes: 1, Listen: "127.0.0.1:0", TLSDir: dir, CapturesDir: t.TempDir()},
	} {
		_, err := New(cfg)
		assert.Error(t, err, name)
	}
	s, err := New(Config{Nodes: 1, Listen: "256.0.0.1:0", TLSDir: dir})
	require.NoError(t, err)
	assert.Error(t, s.Start(context.Background()), "bad listen address")
	assert.NoError(t, s.Close())
	s, err = New(Config{Nodes: 1, Listen: "127.0.0.1:0", TLSDir: dir})
	require.NoError(t, err)
	assert.NoError(t, s.Close(), "Close without Start")
}

func TestStopsWithContext(t *testing.T) {
	s, err := New(Config{Nodes: 1, Listen: "127.0.0.1:0", TLSDir: t.TempDir()})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, s.Start(ctx))
	addr := s.Addr()
	cancel()
	require.Eventually(t, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, 5*time.Second, 20*time.Millisecond)
	assert.NoError(t, s.Close())
}
