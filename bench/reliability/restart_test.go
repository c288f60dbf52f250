package reliability

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/edgetel/edgetel/bench/peers"
)

// longEnv runs the restart test at the size of issue 32's "Done when": a 2 GiB remote-write
// backlog and a full 2 h head of 100,000 series at 15 s.
const longEnv = "EDGETEL_LONG"

type restartScale struct {
	nodes      int
	headSeries int           // synthetic series in the objstore head, 2 h of them
	headStep   time.Duration // their sample interval
	backlog    int64         // bytes in the remote-write buffer at the kill
}

// A collector restart is not a gap: edgesim nodes scraped by a real edgetelcol that holds a full
// 2 h objstore head and a remote-write backlog (its remote end is down) is SIGKILLed and started
// again. Its Start does not wait for either: the head is replayed and the buffer drained in the
// background while it scrapes on. Measured: the time from the new process' start to its first
// scrape appended, and for each node the scrape rounds missed across the restart, counted from
// what the TSDB holds; every sample edgesim served is in the TSDB but the samples of a scrape in
// flight at the kill, and the remote end, once back, holds the same as the TSDB.
func TestRestartWithFullHeadAndBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("a couple of minutes of scraping")
	}
	sc := restartScale{nodes: 20, headSeries: 2000, headStep: 30 * time.Second, backlog: 64 << 20}
	if os.Getenv(longEnv) != "" {
		sc = restartScale{nodes: 100, headSeries: 100_000, headStep: 15 * time.Second, backlog: 2 << 30}
	}
	// Long enough that one missed round is a real bound on the restart: the Collector itself
	// takes a second or two to start on this machine.
	const every = 10 * time.Second
	env := newEnvEvery(t, t.TempDir(), sc.nodes, every)
	env.Sink.SetDown(http.StatusServiceUnavailable)
	headOTLP, backlogOTLP := freeAddr(t), freeAddr(t)
	sys := harness.System{Name: "edgetelcol-restart", Binary: collectorBin, Durable: true,
		Args: restartConfig(headOTLP, backlogOTLP, sc.backlog)}
	c := startSystem(t, env, sys, nil)

	fillStart := time.Now()
	headSamples := pushHead(t, headOTLP, sc, fillStart)
	headFilled := time.Since(fillStart)
	pushBacklog(t, c, backlogOTLP, sc.backlog)
	m, err := c.metrics()
	require.NoError(t, err)
	t.Logf("filled: %d head samples (%d series over 2 h) in %s, remote-write buffer %.0f MiB on disk in %s more",
		headSamples, sc.headSeries, headFilled.Round(time.Second), counter(m, "edgeremotewrite_buffer_disk_bytes")/(1<<20),
		(time.Since(fillStart) - headFilled).Round(time.Second))
	if n := counter(m, "objstore_batches_refused"); n > 0 {
		t.Logf("%v head batches refused and sent again (the count of the head's samples below checks them)", n)
	}
	wait(2 * every) // scraping on top
	m, err = c.metrics()
	require.NoError(t, err)
	// Pushing the head as fast as OTLP takes it can make the objstore exporter refuse a scrape
	// batch before the kill (counted; remote write still has it): then the TSDB lacks those
	// scrapes for reasons that have nothing to do with the restart.
	refusedBefore := counter(m, "objstore_batches_refused")

	c.kill()
	started := time.Now()
	proc, _, err := env.Relaunch(sys, c.params)
	require.NoError(t, err)
	c.proc = proc
	var up, firstAppend time.Duration
	require.Eventually(t, func() bool {
		m, err := c.metrics()
		if err != nil {
			return false
		}
		if up == 0 {
			up = time.Since(started)
		}
		if counter(m, "objstore_samples_appended") > 0 {
			firstAppend = time.Since(started)
			return true
		}
		return false
	}, 3*every, 20*time.Millisecond, "no scrape appended after the restart")
	m, err = c.metrics()
	require.NoError(t, err)
	pending := counter(m, "objstore_replay_pending")
	backlog := counter(m, "edgeremotewrite_buffer_bytes")
	t.Logf("restart: own metrics served %s after the process start, first scrape appended %s after it; "+
		"then %.0f MiB of the previous head still to replay, %.0f MiB of backlog still to send",
		up.Round(time.Millisecond), firstAppend.Round(time.Millisecond), pending/(1<<20), backlog/(1<<20))
	assert.Positive(t, backlog, "the backlog is still there: the first scrape did not wait for it")
	assert.Less(t, firstAppend, every+5*time.Second, "scraping resumes within a round")

	replayed := waitMetric(t, c, "objstore_replay_pending", 0, 15*time.Minute)
	t.Logf("previous head replayed into blocks %s after the process start", replayed.Sub(started).Round(time.Second))
	wait(2 * every)

	var names []string
	for _, n := range env.Sim.Fleet().Nodes {
		names = append(names, n.Name)
	}
	env.Sim.Disconnect(names...)
	wait(2 * every)
	_, servedBy := env.Sim.Served()

	env.Sink.SetDown(0)
	back := time.Now()
	drained := waitMetric(t, c, "edgeremotewrite_buffer_bytes", 0, 20*time.Minute)
	t.Logf("remote end back: backlog sent in %s", drained.Sub(back).Round(time.Second))
	_, deliveredBy := env.Sink.Delivered(harness.Scraped)
	m, err = c.metrics()
	require.NoError(t, err)
	for k, v := range m {
		if strings.Contains(k, "objstore_") && (strings.Contains(k, "refused") || strings.Contains(k, "dropped")) {
			t.Logf("after the restart: %s %v", k, v)
		}
	}
	require.NoError(t, c.proc.Stop(time.Minute))
	// Once more, gracefully: this start writes the previous head out as blocks too, so that the
	// TSDB can be read with plain tsdb (its WAL replay would skip live samples older than the
	// blocks the first replay moved in; the exporter's does not).
	c.start()
	waitMetric(t, c, "objstore_replay_pending", 0, 5*time.Minute)
	require.NoError(t, c.proc.Stop(time.Minute))

	store := readStore(t, filepath.Join(c.params.DataDir, "objstore", "tsdb"), every)
	assert.Equal(t, int64(headSamples), store.prefill, "the whole previous head is in the TSDB")
	worst, lostTotal := int64(0), int64(0)
	for _, name := range names {
		missed := store.missed(name, started)
		worst = max(worst, missed)
		lost := servedBy[name] - store.stored[name]
		t.Logf("%s: served %d, in the TSDB %d (lost %d), at the remote end %d; scrape rounds missed across the restart: %d",
			name, servedBy[name], store.stored[name], lost, deliveredBy[name], missed)
		assert.LessOrEqual(t, missed, int64(1), "%s: at most one scrape round missed", name)
		assert.GreaterOrEqual(t, lost, int64(0), "%s: more stored than served", name)
		assert.Equal(t, servedBy[name], deliveredBy[name], "%s: the remote end holds every sample served", name)
		if refusedBefore == 0 {
			assert.LessOrEqual(t, lost, 2*servedBy[name]/max(store.rounds[name], 1)+1, "%s: at most the scrape in flight at the kill is lost", name)
		}
		lostTotal += lost
	}
	if refusedBefore > 0 {
		t.Logf("the objstore exporter refused %v batches while the head was pushed, before the kill: the TSDB lacks those scrapes", refusedBefore)
	}
	t.Logf("RESULT nodes=%d head=%d samples backlog=%d MiB: first scrape appended %s after the process start, worst node missed %d round(s) of %s, %d served samples not stored",
		sc.nodes, headSamples, sc.backlog>>20, firstAppend.Round(time.Millisecond), worst, every, lostTotal)
}

// restartConfig scrapes into both exporters, and takes the head and backlog fillers over OTLP.
func restartConfig(headOTLP, backlogOTLP string, backlog int64) func(dir string, p peers.Params) ([]string, error) {
	return func(dir string, p peers.Params) ([]string, error) {
		cfg := fmt.Sprintf(`receivers:
  kubeedge:
    collection_interval: %s
    scrape_timeout: %s
    endpoints: {metrics: {enabled: true}, cadvisor: {enabled: true}, resource: {enabled: false}}
    discovery: {mode: file, file: {path: %s}}
    transport:
      mode: cloudcore
      cloudcore: {endpoints: ["%s"], tls: {ca_file: %s}}
  otlp/head:
    protocols: {http: {endpoint: %s}}
  otlp/backlog:
    protocols: {http: {endpoint: %s}}
exporters:
  edgeremotewrite:
    endpoint: %s
    buffer: {directory: %s, max_bytes: %d}
    retry_on_failure: {initial_interval: 200ms, max_interval: 2s}
  objstore:
    directory: %s
    external_labels: {cluster: restart-test}
service:
  telemetry:
    metrics:
      readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d}}}}]
  pipelines:
    metrics/scrape: {receivers: [kubeedge], exporters: [objstore, edgeremotewrite]}
    metrics/head: {receivers: [otlp/head], exporters: [objstore]}
    metrics/backlog: {receivers: [otlp/backlog], exporters: [edgeremotewrite]}
`, p.Interval, p.Timeout, p.FleetFile, p.CloudcoreAddr, p.CAFile, headOTLP, backlogOTLP, p.SinkURL,
			filepath.Join(p.DataDir, "buffer"), backlog+backlog/2, filepath.Join(p.DataDir, "objstore"), p.TelemetryPort)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "edgetelcol.yaml")
		return []string{"--config=" + path}, os.WriteFile(path, []byte(cfg), 0o644)
	}
}

// pushHead stores 2 h (up to now) of sc.headSeries synthetic series in the objstore head, in
// time order, and returns the number of samples.
func pushHead(t *testing.T, addr string, sc restartScale, now time.Time) int {
	t.Helper()
	const perRequest = 10_000
	n := 0
	for at := now.Add(-2 * time.Hour).Truncate(sc.headStep); !at.After(now); at = at.Add(sc.headStep) {
		for from := 0; from < sc.headSeries; from += perRequest {
			to := min(from+perRequest, sc.headSeries)
			postOTLP(t, addr, gauges("prefill_head", from, to, at))
			n += to - from
		}
	}
	return n
}

// pushBacklog fills the remote-write buffer to size bytes on disk.
func pushBacklog(t *testing.T, c *collector, addr string, size int64) {
	t.Helper()
	for i := 0; ; i++ {
		if i%20 == 0 {
			m, err := c.metrics()
			require.NoError(t, err)
			if int64(counter(m, "edgeremotewrite_buffer_disk_bytes")) >= size {
				return
			}
		}
		postOTLP(t, addr, gauges("prefill_backlog", 0, 10_000, time.Now()))
	}
}

func gauges(name string, from, to int, at time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	dps := m.SetEmptyGauge().DataPoints()
	dps.EnsureCapacity(to - from)
	ts := pcommon.NewTimestampFromTime(at)
	for i := from; i < to; i++ {
		dp := dps.AppendEmpty()
		dp.Attributes().PutInt("series", int64(i))
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(float64(i))
	}
	return md
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	require.NoError(t, err)
	return addr
}

// postOTLP hands md to an OTLP/HTTP receiver until it answers 200. A batch the objstore exporter
// refused because the disk did not store it in time (creating 100,000 series at once) may be
// stored after all: sent again, its samples are duplicates, which tsdb ignores.
func postOTLP(t *testing.T, addr string, md pmetric.Metrics) {
	t.Helper()
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	for attempt := 1; ; attempt++ {
		resp, err := http.Post("http://"+addr+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
		require.NoError(t, err)
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		require.Less(t, attempt, 10, "OTLP push refused: %d %s", resp.StatusCode, msg)
		time.Sleep(time.Second)
	}
}

// waitMetric waits until the collector's metric named like part is want, and returns when.
func waitMetric(t *testing.T, c *collector, part string, want float64, timeout time.Duration) time.Time {
	t.Helper()
	var last float64
	ok := assert.Eventually(t, func() bool {
		m, err := c.metrics()
		if err != nil {
			return false
		}
		last = counter(m, part)
		return last == want
	}, timeout, 100*time.Millisecond)
	require.True(t, ok, "%s stayed at %v, not %v", part, last, want)
	return time.Now()
}

// storeCounts is what the objstore exporter's TSDB holds.
type storeCounts struct {
	every   time.Duration
	prefill int64
	stored  map[string]int64   // scraped (series, timestamp) pairs by node
	rounds  map[string]int64   // successful scrapes by node (up == 1, all endpoints)
	up      map[string][]int64 // up == 1 timestamps by target
}

func readStore(t *testing.T, dir string, every time.Duration) *storeCounts {
	t.Helper()
	// Not tsdb.DBReadOnly: it drops WAL samples older than the newest block's end, out-of-order
	// blocks included (tsdb.Open leaves those out, as the exporter's restarts do).
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = (6 * time.Hour).Milliseconds()
	db, err := tsdb.Open(dir, promslog.NewNopLogger(), nil, opts, nil)
	require.NoError(t, err)
	defer db.Close()
	q, err := db.Querier(0, time.Now().Add(time.Hour).UnixMilli())
	require.NoError(t, err)
	defer q.Close()
	s := &storeCounts{every: every, stored: map[string]int64{}, rounds: map[string]int64{}, up: map[string][]int64{}}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		ls := set.At().Labels()
		name, node := ls.Get("__name__"), ls.Get("node")
		it := set.At().Iterator(nil)
		var n int64
		var ups []int64
		for it.Next() != 0 {
			ts, v := it.At()
			if value.IsStaleNaN(v) {
				continue // written when a scrape fails after the nodes disconnect; nothing served
			}
			n++
			if name == "up" && v == 1 {
				ups = append(ups, ts)
			}
		}
		require.NoError(t, it.Err())
		switch {
		case strings.HasPrefix(name, "prefill_head"):
			s.prefill += n
		case name == "up":
			s.up[ls.String()] = ups
			s.rounds[node] += int64(len(ups))
		case node != "" && harness.Scraped(name):
			s.stored[node] += n
		}
	}
	require.NoError(t, set.Err())
	return s
}

// missed is the most scrape rounds any endpoint of node went without a successful scrape across
// the restart at restarted: the gap between the last scrape before it and the first after it,
// in rounds, less one.
func (s *storeCounts) missed(node string, restarted time.Time) int64 {
	iv := s.every.Milliseconds()
	worst := int64(0)
	for target, stamps := range s.up {
		if !strings.Contains(target, `node="`+node+`"`) {
			continue
		}
		for i := 1; i < len(stamps); i++ {
			if stamps[i] >= restarted.UnixMilli() && stamps[i-1] < restarted.UnixMilli() {
				worst = max(worst, (stamps[i]-stamps[i-1]+iv/2)/iv-1)
			}
		}
	}
	return worst
}
