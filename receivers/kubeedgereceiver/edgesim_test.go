package kubeedgereceiver

import (
	"context"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"k8s.io/client-go/rest"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/internal/testing/scrapetest"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/scrapeconv"
)

// startSim runs a simulated fleet that, unlike cloudcore, requires a client certificate, with
// frozen values so what a node serves can be compared with what arrived.
func startSim(t *testing.T, nodes int) (*edgesim.Sim, string) {
	t.Helper()
	fleetFile := filepath.Join(t.TempDir(), "fleet.json")
	s, err := edgesim.New(edgesim.Config{Nodes: nodes, Seed: 7, Listen: "127.0.0.1:0", TLSDir: t.TempDir(),
		RequireClientCert: true, FleetFile: fleetFile, ManualStep: true})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { _ = s.Close() })
	return s, fleetFile
}

func simConfig(s *edgesim.Sim, fleetFile string, interval time.Duration) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.CollectionInterval = interval
	cfg.ScrapeTimeout = interval
	cfg.Discovery.Mode = DiscoveryFile
	cfg.Discovery.File = FileDiscoveryConfig{Path: fleetFile, RefreshInterval: 100 * time.Millisecond}
	files := s.TLSFiles()
	cfg.Transport.Cloudcore.Endpoints = []string{s.Addr()}
	cfg.Transport.Cloudcore.TLS.CAFile = files.CAFile
	cfg.Transport.Cloudcore.TLS.CertFile = files.ClientCertFile
	cfg.Transport.Cloudcore.TLS.KeyFile = files.ClientKeyFile
	return cfg
}

// firstBatches waits until every node has sent a batch in which every path was scraped
// successfully, and returns each node's first such batch. (On a loaded machine a scrape may
// time out; that is the timeout working, not data going wrong.)
func firstBatches(t *testing.T, sink *consumertest.MetricsSink, nodes []fleet.Node, paths []string, wait time.Duration) map[string]pmetric.Metrics {
	t.Helper()
	out := map[string]pmetric.Metrics{}
	allUp := func(md pmetric.Metrics) bool {
		for _, p := range paths {
			if up, _ := gaugeValue(md, "up", map[string]string{"metrics_path": p}); up != 1 {
				return false
			}
		}
		return true
	}
	require.Eventually(t, func() bool {
		for _, md := range sink.AllMetrics() {
			name, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get("k8s.node.name")
			if _, ok := out[name.Str()]; !ok && allUp(md) {
				out[name.Str()] = md
			}
		}
		return len(out) == len(nodes)
	}, wait, 50*time.Millisecond, "nodes with data")
	return out
}

// checkNode compares a node's batch with exactly what edgesim served it: every sample with its
// name, labels, value and timestamp, and every family's type.
func checkNode(t *testing.T, s *edgesim.Sim, n fleet.Node, md pmetric.Metrics, paths []string) {
	t.Helper()
	assert.Empty(t, nodeProblems(s, n, md, paths), n.Name)
}

// nodeProblems lists how a node's batch differs from what edgesim served it (at most a few
// lines per kind of difference).
func nodeProblems(s *edgesim.Sim, n fleet.Node, md pmetric.Metrics, paths []string) []string {
	want := scrapetest.Series{}
	types := map[string]string{}
	var problems []string
	for _, p := range paths {
		body := s.Expected(n.Name, p)
		if len(body) == 0 {
			return []string{n.Name + " " + p + ": edgesim serves nothing"}
		}
		extra := labels.FromStrings("job", "kubeedge", "instance", n.Name, "node", n.Name, "metrics_path", p,
			"region", n.Labels[kube.LabelRegion], "site", n.Labels[kube.LabelSite])
		series, err := scrapetest.FromExposition(body, extra)
		if err != nil {
			return []string{err.Error()}
		}
		maps.Copy(want, series)
		ty, err := scrapetest.ExpositionTypes(body)
		if err != nil {
			return []string{err.Error()}
		}
		maps.Copy(types, ty)
	}
	got, err := scrapetest.FromMetrics(md)
	if err != nil {
		return []string{err.Error()}
	}
	problems = append(problems, scrapetest.Diff(want, withoutHealth(got), 5)...)
	for name, typ := range scrapetest.MetricTypes(md, scrapeconv.MetadataTypeKey) {
		if wantTyp, ok := types[name]; ok && wantTyp != typ {
			problems = append(problems, fmt.Sprintf("%s: type %s, want %s", name, typ, wantTyp))
		}
	}
	for _, p := range paths {
		if up, ok := gaugeValue(md, "up", map[string]string{"metrics_path": p}); !ok || up != 1 {
			problems = append(problems, p+": not up")
		}
	}
	return problems
}

// checkingSink compares each node's first batch in which every path was scraped with what
// edgesim served it, and keeps only the verdict: a thousand nodes' batches need not stay in
// memory. (A scrape may time out on a loaded machine; the node is then checked on a later one.)
type checkingSink struct {
	sim   *edgesim.Sim
	paths []string
	nodes map[string]fleet.Node
	// slots bounds the checks running at once: each holds a node's expected and received
	// series as strings, tens of MB for cadvisor.
	slots chan struct{}

	mu       sync.Mutex
	checked  map[string]bool
	problems []string
}

func newCheckingSink(sim *edgesim.Sim, paths []string) *checkingSink {
	c := &checkingSink{sim: sim, paths: paths, nodes: map[string]fleet.Node{}, checked: map[string]bool{},
		slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	for _, n := range sim.Fleet().Nodes {
		c.nodes[n.Name] = n
	}
	return c
}

func (c *checkingSink) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (c *checkingSink) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	name, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get("k8s.node.name")
	for _, p := range c.paths {
		if up, _ := gaugeValue(md, "up", map[string]string{"metrics_path": p}); up != 1 {
			return nil
		}
	}
	c.mu.Lock()
	n, known := c.nodes[name.Str()]
	done := c.checked[name.Str()]
	c.checked[name.Str()] = true
	c.mu.Unlock()
	if done {
		return nil
	}
	problems := []string{"batch from unknown node " + name.Str()}
	if known {
		c.slots <- struct{}{}
		problems = nodeProblems(c.sim, n, md, c.paths)
		<-c.slots
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range problems {
		c.problems = append(c.problems, n.Name+": "+p)
	}
	return nil
}

func (c *checkingSink) result() (checked int, problems []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.checked), slices.Clone(c.problems)
}

func TestEdgesimThousandNodesThroughOneEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("scrapes every endpoint of 1,000 simulated nodes")
	}
	s, fleetFile := startSim(t, 1000)
	// One round of scrapes per minute: the machine's cores go to scraping 1,000 nodes' 1.5 MB
	// cadvisor bodies once and to checking every sample, not to scraping them again.
	scrapeEveryNodeIntact(t, s, simConfig(s, fleetFile, time.Minute), 5*time.Minute)
}

// scrapeEveryNodeIntact runs a receiver with cfg over the fleet of s until every node's first
// batch was checked against what s served, and fails on any difference.
func scrapeEveryNodeIntact(t *testing.T, s *edgesim.Sim, cfg *Config, wait time.Duration) *kubeedgeReceiver {
	t.Helper()
	paths := []string{"/metrics", "/metrics/cadvisor", "/metrics/resource"}
	check := newCheckingSink(s, paths)
	r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, check, testRegistry)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })
	nodes := len(s.Fleet().Nodes)
	require.Eventually(t, func() bool {
		checked, _ := check.result()
		return checked == nodes
	}, wait, 100*time.Millisecond, "nodes checked")
	_, problems := check.result()
	assert.Empty(t, problems[:min(len(problems), 20)])
	return r
}

func TestEdgesimEveryEndpointIntact(t *testing.T) {
	if testing.Short() {
		t.Skip("scrapes every endpoint of 12 simulated nodes")
	}
	s, fleetFile := startSim(t, 12)
	cfg := simConfig(s, fleetFile, 3*time.Second)
	sink := new(consumertest.MetricsSink)
	startReceiver(t, cfg, sink)

	nodes := s.Fleet().Nodes
	paths := []string{"/metrics", "/metrics/cadvisor", "/metrics/resource"}
	got := firstBatches(t, sink, nodes, paths, 60*time.Second)
	for _, n := range nodes {
		checkNode(t, s, n, got[n.Name], paths)
	}
}

func TestEdgesimRejectsReceiverWithoutClientCert(t *testing.T) {
	s, fleetFile := startSim(t, 2)
	cfg := simConfig(s, fleetFile, 200*time.Millisecond)
	cfg.Transport.Cloudcore.TLS.CertFile, cfg.Transport.Cloudcore.TLS.KeyFile = "", ""
	sink := new(consumertest.MetricsSink)
	startReceiver(t, cfg, sink)
	name := s.Fleet().Nodes[0].Name
	require.Eventually(t, func() bool { return len(batches(sink, name)) > 0 }, 10*time.Second, 20*time.Millisecond)
	up, ok := gaugeValue(batches(sink, name)[0], "up", map[string]string{"metrics_path": "/metrics"})
	require.True(t, ok)
	assert.Zero(t, up)
	fails, ok := gaugeValue(batches(sink, name)[0], "kubeedge_scrape_failures_total",
		map[string]string{"metrics_path": "/metrics", "reason": reasonTransport})
	require.True(t, ok, fmt.Sprint(batches(sink, name)[0]))
	assert.Equal(t, 1.0, fails)
}

// The edge-agent view: each node's own plain-HTTP kubelet endpoint, addresses from the fleet file.
func TestEdgesimDirect(t *testing.T) {
	fleetFile := filepath.Join(t.TempDir(), "fleet.json")
	s, err := edgesim.New(edgesim.Config{Nodes: 4, Seed: 3, Listen: "127.0.0.1:0", TLSDir: t.TempDir(),
		Direct: true, FleetFile: fleetFile, ManualStep: true})
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { _ = s.Close() })

	cfg := simConfig(s, fleetFile, time.Second)
	cfg.Transport.Mode = TransportDirect
	sink := new(consumertest.MetricsSink)
	startReceiver(t, cfg, sink)
	nodes := s.Fleet().Nodes
	for _, n := range nodes {
		require.NotEmpty(t, n.Direct, n.Name)
	}
	paths := []string{"/metrics", "/metrics/cadvisor", "/metrics/resource"}
	got := firstBatches(t, sink, nodes, paths, 60*time.Second)
	for _, n := range nodes {
		checkNode(t, s, n, got[n.Name], paths)
	}
}

// A node whose tunnel drops fails its scrapes, but its series are not ended on that account;
// when it comes back they continue.
func TestEdgesimDisconnectDoesNotEndSeries(t *testing.T) {
	s, fleetFile := startSim(t, 2)
	cfg := simConfig(s, fleetFile, 300*time.Millisecond)
	cfg.Endpoints.Cadvisor.Enabled = false
	cfg.Endpoints.Metrics.Enabled = false
	sink := new(consumertest.MetricsSink)
	startReceiver(t, cfg, sink)
	name := s.Fleet().Nodes[0].Name
	require.Eventually(t, func() bool { return len(batches(sink, name)) >= 2 }, 10*time.Second, 10*time.Millisecond)

	s.Disconnect(name)
	var during []pmetric.Metrics
	require.Eventually(t, func() bool {
		during = nil
		for _, md := range batches(sink, name) {
			if up, _ := gaugeValue(md, "up", map[string]string{"metrics_path": "/metrics/resource"}); up == 0 {
				during = append(during, md)
			}
		}
		return len(during) >= 3
	}, 10*time.Second, 10*time.Millisecond)
	for _, md := range during {
		assert.Equal(t, len(healthNames)+len(measuredNames), md.MetricCount(), "only health series while disconnected")
		assert.False(t, staleBatch(md))
	}

	s.Reconnect(name)
	require.Eventually(t, func() bool {
		up, _ := gaugeValue(lastBatch(sink, name), "up", map[string]string{"metrics_path": "/metrics/resource"})
		return up == 1
	}, 10*time.Second, 10*time.Millisecond)
	md := lastBatch(sink, name)
	assert.Greater(t, md.MetricCount(), len(healthNames))
	disconnects, _ := gaugeValue(md, "kubeedge_node_disconnects_total", nil)
	assert.Equal(t, 1.0, disconnects)
	for bi, b := range batches(sink, name) {
		ms, _ := allMetrics(b)
		for _, m := range ms {
			if m.Type() == pmetric.MetricTypeGauge && m.Gauge().DataPoints().At(0).Flags().NoRecordedValue() {
				up, _ := gaugeValue(b, "up", map[string]string{"metrics_path": "/metrics/resource"})
				t.Fatalf("batch %d (up %v): %s got a staleness marker: %v", bi, up, m.Name(), m.Gauge().DataPoints().At(0).Attributes().AsRaw())
			}
		}
	}
}

// apiServerProxy stands in for kube-apiserver's node proxy in front of edgesim: it serves
// /api/v1/nodes/<name>/proxy/<path> with a bearer token, and forwards to the node's
// <InternalIP>:<port> (which the DNAT rules send to cloudcore) with X-Forwarded-Uri set to the
// original path, as the API server does.
func apiServerProxy(t *testing.T, s *edgesim.Sim, token string) *httptest.Server {
	tlsCfg, err := s.TLSFiles().ClientConfig(true)
	require.NoError(t, err)
	byName := map[string]fleet.Node{}
	for _, n := range s.Fleet().Nodes {
		byName[n.Name] = n
	}
	rt := &http.Transport{TLSClientConfig: tlsCfg}
	t.Cleanup(rt.CloseIdleConnections)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		seg := strings.SplitN(r.URL.Path, "/", 7) // "", api, v1, nodes, <name>, proxy, <path>
		if len(seg) != 7 || seg[1] != "api" || seg[3] != "nodes" || seg[5] != "proxy" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		n, ok := byName[seg[4]]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		proxy := &httputil.ReverseProxy{Transport: rt, Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "https", s.Addr()
			pr.Out.URL.Path = "/" + seg[6]
			pr.Out.Host = n.Address()
			pr.Out.Header.Set("X-Forwarded-Uri", r.URL.Path)
		}}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestEdgesimThroughAPIServerProxy(t *testing.T) {
	s, fleetFile := startSim(t, 3)
	api := apiServerProxy(t, s, "sa-token")
	cfg := simConfig(s, fleetFile, time.Second)
	cfg.Transport.Mode = TransportAPIServer
	paths := []string{"/metrics", "/metrics/cadvisor", "/metrics/resource"}
	r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop(), testRegistry)
	require.NoError(t, err)
	sink := new(consumertest.MetricsSink)
	r.next = sink
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	r.build.restConfig = func(kube.APIConfig) (*rest.Config, error) {
		return &rest.Config{Host: api.URL, BearerToken: "sa-token", TLSClientConfig: rest.TLSClientConfig{CAData: ca}}, nil
	}
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, r.Shutdown(context.Background())) })

	nodes := s.Fleet().Nodes
	got := firstBatches(t, sink, nodes, paths, 60*time.Second)
	for _, n := range nodes {
		checkNode(t, s, n, got[n.Name], paths)
	}
}
