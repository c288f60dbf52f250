package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// receive is a real Thanos Receive (EDGETEL_THANOS) with the flags of
// examples/thanos-receive/receive.args, the out-of-order window replaced by window, and a Thanos
// Query reading it.
type receive struct {
	proc  *thanostest.Process
	write string // remote-write URL
	query string // Thanos Query's HTTP base URL
}

func startReceive(t *testing.T, window string) *receive {
	t.Helper()
	args := thanostest.ArgsFile(t, filepath.Join("..", "..", "examples", "thanos-receive", "receive.args"))
	for i, a := range args {
		if strings.HasPrefix(a, "--tsdb.out-of-order.time-window=") {
			args[i] = "--tsdb.out-of-order.time-window=" + window
		}
	}
	rw := thanostest.FreeAddr(t)
	args = append(args, "--remote-write.address="+rw, "--tsdb.path="+t.TempDir())
	recv := thanostest.Start(t, "receive", true, args...)
	q := thanostest.Start(t, "query", true, "--endpoint="+recv.GRPC)
	return &receive{proc: recv, write: "http://" + rw + "/api/v1/receive", query: "http://" + q.HTTP}
}

// vector runs an instant query through Thanos Query (no deduplication) and returns its samples
// keyed by the values of the labels named in by, joined with "/".
func (r *receive) vector(t *testing.T, expr string, at time.Time, by ...string) map[string]float64 {
	t.Helper()
	a, err := thanostest.Query(t, r.query, expr, at, url.Values{"dedup": {"false"}})
	require.NoError(t, err, expr)
	out := map[string]float64{}
	for _, s := range a.Vector {
		var key []string
		for _, l := range by {
			key = append(key, string(s.Metric[model.LabelName(l)]))
		}
		out[strings.Join(key, "/")] += float64(s.Value)
	}
	return out
}

// countByNode counts the samples stored in the window before at, by tenant and node ("tenant/node"),
// of everything edgesim served: every series with a node label but the ones a scraper makes up
// about its scrapes (harness.Scraped). One query per metric name: count_over_time drops the name,
// and series that differ only in it would collide in one query.
func (r *receive) countByNode(t *testing.T, window string, at time.Time) map[string]float64 {
	t.Helper()
	resp, err := http.Get(r.query + "/api/v1/label/__name__/values")
	require.NoError(t, err)
	defer resp.Body.Close()
	var names struct{ Data []string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&names))
	out := map[string]float64{}
	for _, name := range names.Data {
		if !harness.Scraped(name) {
			continue
		}
		q := fmt.Sprintf(`sum by (tenant_id, node) (count_over_time(%s{node=~".+"}%s))`, name, window)
		for k, v := range r.vector(t, q, at, "tenant_id", "node") {
			out[k] += v
		}
	}
	return out
}

// twoTenants is the collector's configuration for TestThanosReceiveTwoTenantsThroughOutageAndKill:
// the kubeedge receiver through edgesim's cloudcore, and one edgeremotewrite exporter per tenant
// (THANOS-TENANT), which keeps only its nodes by write_relabel_configs.
func twoTenants(write, oddNodes string) func(dir string, p peers.Params) ([]string, error) {
	return func(dir string, p peers.Params) ([]string, error) {
		exporter := func(tenant, action string) string {
			return fmt.Sprintf(`
  edgeremotewrite/%[1]s:
    endpoint: %[2]s
    headers: {THANOS-TENANT: %[1]s}
    write_relabel_configs:
      - {source_labels: [node], regex: '%[3]s', action: %[4]s}
    buffer: {directory: %[5]s}
    retry_on_failure: {initial_interval: 200ms, max_interval: 2s}
`, tenant, write, oddNodes, action, filepath.Join(p.DataDir, tenant))
		}
		cfg := fmt.Sprintf(`receivers:
  kubeedge:
    collection_interval: %s
    scrape_timeout: %s
    endpoints: {metrics: {enabled: true}, cadvisor: {enabled: true}, resource: {enabled: false}}
    discovery: {mode: file, file: {path: %s}}
    transport:
      mode: cloudcore
      cloudcore: {endpoints: ["%s"], tls: {ca_file: %s}}
exporters:%s%s
service:
  telemetry:
    metrics:
      readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}}]
  pipelines:
    metrics: {receivers: [kubeedge], exporters: [edgeremotewrite/site-a, edgeremotewrite/site-b]}
`, p.Interval, p.Timeout, p.FleetFile, p.CloudcoreAddr, p.CAFile,
			exporter("site-a", "keep"), exporter("site-b", "drop"), p.TelemetryPort)
		path := filepath.Join(dir, "edgetelcol.yaml")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return []string{"--config=" + path}, os.WriteFile(path, []byte(cfg), 0o644)
	}
}

// edgesim → edgetelcol (cloudcore transport) → real Thanos Receive, two tenants split by node:
// Receive goes away, the collector is SIGKILLed and restarted during the outage, Receive comes
// back. Read through Thanos Query, every sample edgesim served is in its node's tenant, once, and
// in no other tenant: counted exactly per node (count_over_time of the (series, timestamp) pairs
// Receive stored against edgesim's served count), not inferred from intervals. A node with a
// scrape that failed outside the paused moments (a timeout on a loaded machine: served, then
// counted by the receiver as up == 0) may lack that scrape's samples and nothing else.
func TestThanosReceiveTwoTenantsThroughOutageAndKill(t *testing.T) {
	if testing.Short() {
		t.Skip("two minutes of scraping into Thanos Receive")
	}
	const nodes, every = 10, 3 * time.Second
	recv := startReceive(t, "6h")
	env := newEnvEvery(t, t.TempDir(), nodes, every)
	const oddNodes = "edge-[0-9]*[13579]"
	sys := harness.System{Name: "edgetelcol-thanos", Binary: collectorBin, Durable: true,
		Args: twoTenants(recv.write, oddNodes)}
	start := time.Now()
	c := startSystem(t, env, sys, nil)
	var paused [][2]time.Time // [from, to) in which scrapes were refused on purpose
	pause := func() {
		from := time.Now()
		env.Sim.Pause(true)
		wait(env.Timeout + 2*time.Second) // the scrapes in flight end and are handed on
		paused = append(paused, [2]time.Time{from, {}})
	}
	resume := func() {
		env.Sim.Pause(false)
		paused[len(paused)-1][1] = time.Now().Add(every) // the next round may still meet the pause
	}

	wait(30 * time.Second)
	recv.proc.Stop() // the outage
	wait(20 * time.Second)
	pause()
	c.kill() // SIGKILL with a backlog on disk
	c.start()
	resume()
	wait(20 * time.Second)
	recv.proc.Restart(t)
	wait(30 * time.Second)
	pause()
	end := time.Now()
	served, servedBy := env.Sim.Served()
	a := c.emptied(3 * time.Minute)
	relabeled := dropped(a, "relabeled")
	assert.Equal(t, relabeled, counter(a, "edgeremotewrite_samples_dropped"), "nothing refused or expired, only the other tenant's nodes dropped")

	window := fmt.Sprintf("[%ds]", int(time.Since(start).Seconds())+60)
	var got map[string]float64
	require.Eventually(t, func() bool {
		got = recv.countByNode(t, window, end)
		var n float64
		for _, v := range got {
			n += v
		}
		return n >= float64(served)
	}, time.Minute, 2*time.Second, "Thanos Query has what edgesim served (%d)", served)
	failed := failedInReceive(t, recv, window, end, paused)
	var stored float64
	for _, n := range env.Sim.Fleet().Nodes {
		tenant, other := "site-b", "site-a"
		if strings.ContainsAny(n.Name[len(n.Name)-1:], "13579") {
			tenant, other = other, tenant
		}
		have := int64(got[tenant+"/"+n.Name])
		stored += got[tenant+"/"+n.Name]
		assert.Zero(t, got[other+"/"+n.Name], "%s: in the other tenant", n.Name)
		if failed[n.Name] == 0 {
			assert.Equal(t, servedBy[n.Name], have, "%s (%s): every scrape succeeded, so every sample served is stored once", n.Name, tenant)
		} else {
			assert.LessOrEqual(t, have, servedBy[n.Name], "%s: more stored than served", n.Name)
			t.Logf("%s: %d failed scrapes; served %d, stored %d", n.Name, failed[n.Name], servedBy[n.Name], have)
		}
	}
	t.Logf("served %d samples, stored %.0f in Thanos Receive (two tenants); since the restart the exporters buffered %.0f, sent %.0f (resends after the SIGKILL included), dropped %.0f of the other tenant",
		served, stored, counter(a, "edgeremotewrite_samples_buffered"), counter(a, "edgeremotewrite_samples_sent"), relabeled)
}

// emptied waits until the exporters' buffers hold nothing unacknowledged, and returns the
// collector's metrics then. (drain's buffered == sent + dropped does not hold across a restart:
// the new life sends what the old one buffered.)
func (c *collector) emptied(timeout time.Duration) map[string]float64 {
	c.t.Helper()
	var m map[string]float64
	require.Eventually(c.t, func() bool {
		var err error
		m, err = c.metrics()
		return err == nil && counter(m, "edgeremotewrite_samples_sent") > 0 &&
			m["otelcol_exporter_edgeremotewrite_buffer_bytes"] == 0
	}, timeout, time.Second, "the buffers are not empty")
	return m
}

// failedInReceive counts, by node, the scrapes the receiver reported failed (up == 0) outside the
// paused moments, read back from Thanos Query.
func failedInReceive(t *testing.T, recv *receive, window string, at time.Time, paused [][2]time.Time) map[string]int {
	t.Helper()
	a, err := thanostest.Query(t, recv.query, `up`+window, at, url.Values{"dedup": {"false"}})
	require.NoError(t, err)
	out := map[string]int{}
	for _, s := range a.Matrix {
		for _, p := range s.Values {
			if p.Value == 1 || inPause(p.Timestamp.Time(), paused) {
				continue
			}
			out[string(s.Metric["node"])]++
		}
	}
	return out
}

func inPause(at time.Time, paused [][2]time.Time) bool {
	for _, p := range paused {
		if !at.Before(p[0]) && (p[1].IsZero() || at.Before(p[1])) {
			return true
		}
	}
	return false
}

// The edge agent (examples/edge-agent/config.yaml as written, plus an OTLP receiver through which
// the test puts a two-hour backlog into its buffer) against a real Thanos Receive whose
// out-of-order window is either wider than the backlog or narrower. The agent scrapes its node
// live, Receive goes away, two hours of samples (one request per minute of them, as scrapes
// would have buffered them) go into the agent's buffer, the agent is SIGKILLed and started
// again, Receive comes back. Inside the window every backlog sample lands with its original
// timestamp and value; outside it, Receive refuses the oldest (409), they are counted as rejected
// (nothing is retried forever: the buffer empties), and the newer part lands.
func TestEdgeAgentBacklogInThanosReceive(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the edge agent and Thanos Receive twice")
	}
	t.Run("inside the window", func(t *testing.T) { testEdgeAgentBacklog(t, "3h") })
	t.Run("outside the window", func(t *testing.T) { testEdgeAgentBacklog(t, "30m") })
}

const backlogSeries, backlogMinutes = 5, 120

func testEdgeAgentBacklog(t *testing.T, window string) {
	recv := startReceive(t, window)
	env := newEnvEvery(t, t.TempDir(), 1, interval)
	node := env.Sim.Fleet().Nodes[0]
	agent := startEdgeAgent(t, env, node.Name, node.Direct, recv.write)
	require.Eventually(t, func() bool {
		return len(recv.vector(t, `up{node="`+node.Name+`"}`, time.Now(), "node")) > 0
	}, time.Minute, time.Second, "the agent's live data reaches Receive")

	recv.proc.Stop()
	t0 := time.Now().Truncate(time.Minute)
	for k := backlogMinutes; k >= 1; k-- {
		agent.postOTLP(t, backlogBatch(t0.Add(-time.Duration(k)*time.Minute)))
	}
	before, err := ownMetrics(agent.port)
	require.NoError(t, err)
	agent.kill()
	agent.start(t)
	recv.proc.Restart(t)

	var m map[string]float64
	require.Eventually(t, func() bool {
		var err error
		m, err = ownMetrics(agent.port)
		return err == nil && counter(m, "edgeremotewrite_samples_sent") > 0 &&
			m["otelcol_exporter_edgeremotewrite_buffer_bytes"] == 0
	}, 3*time.Minute, time.Second, "the agent's buffer empties")
	// Thanos Query finds the restarted Receive again within its endpoint refresh: wait until the
	// backlog shows and two reads a refresh apart agree. Read at the present: Receive tells
	// Query the oldest time it holds without the out-of-order samples (minTime is the in-order
	// head's start after a restart), so Query skips it for a query that ends before that, and
	// the backlog is not seen there until Receive compacts it into a block (seen with the
	// pinned Thanos).
	var got map[int]map[time.Time]float64
	require.Eventually(t, func() bool {
		before := backlogIn(t, recv)
		time.Sleep(5 * time.Second)
		got = backlogIn(t, recv)
		return (len(got) > 0 && reflect.DeepEqual(before, got))
	}, time.Minute, time.Second, "Thanos Query reads the restarted Receive")
	rejected := dropped(m, "rejected")
	var stored int
	for s := range backlogSeries {
		stored += len(got[s])
		for ts, v := range got[s] {
			assert.Equal(t, backlogValue(s, ts), v, "series %d at %v: not the original value", s, ts)
		}
	}
	missing := backlogSeries*backlogMinutes - stored
	t.Logf("window %s: %d backlog samples stored, %d missing, %.0f counted as rejected", window, stored, missing, rejected)
	assert.Equal(t, rejected, counter(m, "edgeremotewrite_samples_dropped"), "nothing dropped for another reason")
	if window == "3h" {
		assert.Zero(t, missing, "a backlog inside the window lands whole")
		assert.Zero(t, rejected)
		return
	}
	assert.Positive(t, missing, "a backlog older than the window is refused")
	// Every missing sample is counted. The count may be higher: past the split budget a refused
	// part is counted whole, live samples in it too, though Receive stored its valid samples
	// (exporter README, Answers).
	assert.GreaterOrEqual(t, rejected, float64(missing), "a refused sample that is not counted")
	// What both lives of the agent buffered: the backlog and the live samples before the SIGKILL,
	// the live samples since the restart.
	assert.LessOrEqual(t, rejected, counter(before, "edgeremotewrite_samples_buffered")+counter(m, "edgeremotewrite_samples_buffered"),
		"more rejected than was ever buffered")
	for s := range backlogSeries {
		for k := 1; k <= 25; k++ {
			at := t0.Add(-time.Duration(k) * time.Minute)
			assert.Contains(t, got[s], at, "series %d: %v is inside the window", s, at)
		}
		for k := 90; k <= backlogMinutes; k++ {
			at := t0.Add(-time.Duration(k) * time.Minute)
			assert.NotContains(t, got[s], at, "series %d: %v is older than the window", s, at)
		}
	}
}

// backlogBatch is one minute of the backlog: backlogSeries gauges at at.
func backlogBatch(at time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("edge_backlog_probe")
	dps := m.SetEmptyGauge().DataPoints()
	for s := range backlogSeries {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.SetDoubleValue(backlogValue(s, at))
		dp.Attributes().PutStr("series", strconv.Itoa(s))
	}
	return md
}

func backlogValue(series int, at time.Time) float64 {
	return float64(series*1e6) + float64(at.Unix()%1e6)
}

// backlogIn returns, per series, the backlog samples Thanos Query returns.
func backlogIn(t *testing.T, recv *receive) map[int]map[time.Time]float64 {
	t.Helper()
	a, err := thanostest.Query(t, recv.query, `edge_backlog_probe[4h]`, time.Now(), url.Values{"dedup": {"false"}})
	require.NoError(t, err)
	out := map[int]map[time.Time]float64{}
	for _, s := range a.Matrix {
		n, err := strconv.Atoi(string(s.Metric["series"]))
		require.NoError(t, err)
		out[n] = map[time.Time]float64{}
		for _, p := range s.Values {
			out[n][p.Timestamp.Time()] = float64(p.Value)
		}
	}
	return out
}

// edgeAgent is edgetelcol started as the edge agent example says, with an OTLP/HTTP receiver
// added to its pipeline.
type edgeAgent struct {
	dir, otlp string
	port      int
	args      []string
	proc      *harness.Process
}

func startEdgeAgent(t *testing.T, env *harness.Env, nodeName, kubelet, write string) *edgeAgent {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	a := &edgeAgent{dir: dir, otlp: fmt.Sprintf("127.0.0.1:%d", freePort(t)), port: port}
	for k, v := range map[string]string{"NODE_NAME": nodeName, "NODE_IP": "127.0.0.1", "KUBELET_ENDPOINT": kubelet,
		"REMOTE_WRITE_URL": write, "TENANT": "edge-7", "BUFFER_DIR": filepath.Join(dir, "buffer"),
		"TELEMETRY_PORT": strconv.Itoa(port), "HEALTH_ENDPOINT": fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"SCRAPE_INTERVAL": interval.String(), "SCRAPE_TIMEOUT": env.Timeout.String()} {
		t.Setenv(k, v)
	}
	example, err := filepath.Abs(filepath.Join("..", "..", "examples", "edge-agent", "config.yaml"))
	require.NoError(t, err)
	a.args = []string{"--config=" + example,
		"--config=yaml:receivers::otlp::protocols::http::endpoint: " + a.otlp,
		"--config=yaml:service::pipelines::metrics::receivers: [kubeedge, prometheus/self, otlp]",
		// The Receive of the inside case has a 3 h window: the agent is told so (max_age follows).
		"--config=yaml:exporters::edgeremotewrite::buffer::store_out_of_order_window: 3h",
		"--config=yaml:exporters::edgeremotewrite::retry_on_failure::max_interval: 2s"}
	a.start(t)
	t.Cleanup(func() { _ = a.proc.Stop(20 * time.Second) })
	return a
}

func (a *edgeAgent) start(t *testing.T) {
	t.Helper()
	proc, err := harness.Start("edge-agent", a.dir, collectorBin, a.args...)
	require.NoError(t, err)
	a.proc = proc
	if !assert.Eventually(t, func() bool { _, err := ownMetrics(a.port); return err == nil }, time.Minute, 200*time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(a.dir, "edge-agent.log"))
		t.Fatalf("the edge agent did not start:\n%s", tail(b, 4000))
	}
}

func (a *edgeAgent) kill() { _ = a.proc.Kill() }

// postOTLP hands md to the agent's OTLP/HTTP receiver; a 200 means it is in the buffer.
func (a *edgeAgent) postOTLP(t *testing.T, md pmetric.Metrics) {
	t.Helper()
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	resp, err := http.Post("http://"+a.otlp+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func freePort(t *testing.T) int {
	t.Helper()
	addr := thanostest.FreeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return n
}
