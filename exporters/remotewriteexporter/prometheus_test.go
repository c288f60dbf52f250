package remotewriteexporter

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/exporters/remotewriteexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// prometheusBin is the Prometheus binary the Makefile installs (make tool-prometheus) and
// passes in EDGETEL_PROMETHEUS.
func prometheusBin(t *testing.T) string {
	t.Helper()
	return testprog.Path(t, "EDGETEL_PROMETHEUS", "tool-prometheus")
}

// promServer is a real Prometheus on loopback with its remote-write receiver and a one-hour
// out-of-order window, which backfilled samples need.
type promServer struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func newPromServer(t *testing.T) *promServer {
	bin := prometheusBin(t)
	dir := t.TempDir()
	cfg := "global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: 1h\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600))
	p := &promServer{t: t, bin: bin, dir: dir, addr: freeAddr(t)}
	t.Cleanup(p.stop)
	return p
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func (p *promServer) writeURL() string { return "http://" + p.addr + "/api/v1/write" }

func (p *promServer) start() {
	p.t.Helper()
	log, err := os.OpenFile(filepath.Join(p.dir, "prometheus.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	require.NoError(p.t, err)
	p.cmd = exec.Command(p.bin,
		"--config.file="+filepath.Join(p.dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(p.dir, "data"),
		"--web.listen-address="+p.addr,
		"--web.enable-remote-write-receiver",
		"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
		"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request",
	)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	require.NoError(p.t, p.cmd.Start())
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); _ = log.Close(); close(p.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("prometheus exited; log:\n%s", p.log())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("prometheus not ready; log:\n%s", p.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *promServer) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "prometheus.log"))
	return string(b)
}

func (p *promServer) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// query runs an instant query and returns every series' raw samples, keyed like seriesKey.
func (p *promServer) query(q string, at time.Time) map[string][]prompb.Sample {
	p.t.Helper()
	u := "http://" + p.addr + "/api/v1/query?" + url.Values{
		"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)},
	}.Encode()
	resp, err := http.Get(u)
	require.NoError(p.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	require.Equal(p.t, http.StatusOK, resp.StatusCode, string(body))
	var r struct {
		Data struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
				Values [][]any           `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(p.t, json.Unmarshal(body, &r))
	out := map[string][]prompb.Sample{}
	for _, s := range r.Data.Result {
		var ls []prompb.Label
		for k, v := range s.Metric {
			ls = append(ls, prompb.Label{Name: k, Value: v})
		}
		values := s.Values
		if s.Value != nil {
			values = [][]any{s.Value}
		}
		var samples []prompb.Sample
		for _, v := range values {
			f, err := strconv.ParseFloat(v[1].(string), 64)
			require.NoError(p.t, err)
			samples = append(samples, prompb.Sample{Timestamp: int64(math.Round(v[0].(float64) * 1000)), Value: f})
		}
		out[seriesKey(ls)] = samples
	}
	return out
}

func countSamples(m map[string][]prompb.Sample) int {
	n := 0
	for _, s := range m {
		n += len(s)
	}
	return n
}

func TestPrometheusReceivesEverySample(t *testing.T) {
	for _, proto := range []string{ProtocolV1, ProtocolV2} {
		t.Run("rw"+proto, func(t *testing.T) {
			prom := newPromServer(t)
			prom.start()
			cfg := testConfig(t, prom.writeURL())
			cfg.ProtocolVersion = proto
			e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)

			now := time.Now().Truncate(time.Second)
			base := now.Add(-30 * time.Minute).UnixMilli()
			const nSeries, nBatches = 25, 40
			for i := 0; i < nBatches; i++ {
				require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, i, base)))
			}
			kindsTs := now.Add(-10 * time.Minute).UnixMilli()
			require.NoError(t, e.push(context.Background(), testMetrics(kindsTs)))

			q := testMetric + "[1h]"
			settle(30*time.Second, func() bool { return countSamples(prom.query(q, now)) >= nSeries*nBatches })
			checkBatches(t, prom.query(q, now), nSeries, seqInts(0, nBatches), base)

			// Every kind, with its Prometheus name and labels, at its timestamp.
			got := prom.query(`{cluster="c1",job="kubelet"}[1h]`, now)
			for k, v := range wantSeries(kindsTs) {
				if math.IsNaN(v) {
					continue // a stale marker is never returned as a sample; see TestPrometheusStaleness
				}
				require.Contains(t, got, k)
				assert.Equal(t, []prompb.Sample{{Timestamp: kindsTs, Value: v}}, got[k], k)
			}
		})
	}
}

// A data point flagged NoRecordedValue must end the series in Prometheus at once, as a
// scrape's staleness marker does, instead of the last value lingering for 5 minutes.
func TestPrometheusStaleness(t *testing.T) {
	prom := newPromServer(t)
	prom.start()
	e := startExporter(t, testConfig(t, prom.writeURL()), componenttest.NewNopTelemetrySettings(), nil)
	t0 := time.Now().Add(-20 * time.Minute).Truncate(time.Second)
	point := func(ts time.Time, stale bool) pmetric.Metrics {
		md := gaugeBatch(1, 0, 0)
		dp := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0)
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetDoubleValue(7)
		if stale {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		}
		return md
	}
	require.NoError(t, e.push(context.Background(), point(t0, false)))
	require.NoError(t, e.push(context.Background(), point(t0.Add(10*time.Second), true)))
	waitFor(t, 30*time.Second, "the sample", func() bool { return len(prom.query(testMetric, t0.Add(5*time.Second))) == 1 })
	waitFor(t, 30*time.Second, "the stale marker", func() bool { return len(prom.query(testMetric, t0.Add(20*time.Second))) == 0 })
	// Without the marker the value would still be returned 20 s later (5 m lookback). Check
	// that the query above is not empty for another reason:
	assert.Len(t, prom.query(testMetric, t0.Add(9*time.Second)), 1)
}

// The child-process collector for TestPrometheusOutageWithSIGKILL: it pushes gaugeBatch
// [START, LIMIT) through the real component, printing "pushed N" after each ConsumeMetrics
// returns (the batch is then on disk), and shuts down on SIGTERM.
func TestHelperCollector(t *testing.T) {
	if os.Getenv("EDGETEL_RW_CHILD") != "1" {
		t.Skip("helper process for TestPrometheusOutageWithSIGKILL")
	}
	env := func(k string) int64 {
		v, err := strconv.ParseInt(os.Getenv(k), 10, 64)
		require.NoError(t, err, k)
		return v
	}
	start, limit, nSeries, base := int(env("RW_START")), int(env("RW_LIMIT")), int(env("RW_SERIES")), env("RW_BASE")
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Endpoint = os.Getenv("RW_ENDPOINT")
	cfg.Buffer.Directory = os.Getenv("RW_DIR")
	cfg.ExternalLabels = map[string]string{"cluster": "c1"}
	cfg.RetryConfig.MaxInterval = 500 * time.Millisecond
	cfg.ProtocolVersion = os.Getenv("RW_PROTOCOL")
	exp, err := f.CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	term := make(chan os.Signal, 1)
	signalNotify(term)
	for i := start; i < limit; i++ {
		require.NoError(t, exp.ConsumeMetrics(context.Background(), gaugeBatch(nSeries, i, base)))
		fmt.Printf("pushed %d\n", i)
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Println("done")
	<-term
	require.NoError(t, exp.Shutdown(context.Background()))
}

type child struct {
	cmd    *exec.Cmd
	pushed atomic.Int64 // last batch index reported, -1 before the first
	exited chan struct{}
}

func startChild(t *testing.T, env ...string) *child {
	t.Helper()
	c := &child{exited: make(chan struct{})}
	c.pushed.Store(-1)
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperCollector$", "-test.count=1", "-test.v")
	c.cmd.Env = append(append(os.Environ(), "EDGETEL_RW_CHILD=1"), env...)
	c.cmd.Stderr = os.Stderr
	out, err := c.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, c.cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n int64
			if _, err := fmt.Sscanf(sc.Text(), "pushed %d", &n); err == nil {
				c.pushed.Store(n)
			}
		}
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.exited
	})
	return c
}

// The outage test: the receiving end goes away, the collector is killed with SIGKILL in
// the middle of the outage and restarted; when the receiver returns, every sample pushed is in
// Prometheus, each exactly once, checked sample by sample.
func TestPrometheusOutageWithSIGKILL(t *testing.T) {
	for _, proto := range []string{ProtocolV1, ProtocolV2} {
		t.Run("rw"+proto, func(t *testing.T) { testOutageWithSIGKILL(t, proto) })
	}
}

func testOutageWithSIGKILL(t *testing.T, proto string) {
	prom := newPromServer(t)
	prom.start()
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	const nSeries, limit = 20, 1200
	base := now.Add(-50 * time.Minute).UnixMilli()
	env := []string{
		"RW_ENDPOINT=" + prom.writeURL(), "RW_DIR=" + dir, "RW_SERIES=" + strconv.Itoa(nSeries),
		"RW_LIMIT=" + strconv.Itoa(limit), "RW_BASE=" + strconv.FormatInt(base, 10), "RW_PROTOCOL=" + proto,
	}
	q := testMetric + "[2h]"

	c1 := startChild(t, append(env, "RW_START=0")...)
	waitFor(t, 60*time.Second, "first pushes delivered", func() bool {
		return c1.pushed.Load() >= 150 && countSamples(prom.query(q, now)) > 0
	})
	prom.stop() // the outage begins
	before := c1.pushed.Load()
	waitFor(t, 60*time.Second, "pushes during the outage", func() bool { return c1.pushed.Load() >= before+300 })
	require.NoError(t, c1.cmd.Process.Signal(syscall.SIGKILL))
	<-c1.exited
	last := c1.pushed.Load()
	t.Logf("collector killed after batch %d (outage began after batch %d)", last, before)

	c2 := startChild(t, append(env, "RW_START="+strconv.FormatInt(last+1, 10))...)
	waitFor(t, 60*time.Second, "pushes after the restart", func() bool { return c2.pushed.Load() >= last+200 })
	prom.start() // the outage ends
	waitFor(t, 60*time.Second, "all pushes", func() bool { return c2.pushed.Load() == limit-1 })
	// No waitFor: on a timeout, checkBatches says which samples are missing.
	settle(120*time.Second, func() bool { return countSamples(prom.query(q, now)) >= nSeries*limit })
	checkBatches(t, prom.query(q, now), nSeries, seqInts(0, limit), base)
	require.NoError(t, c2.cmd.Process.Signal(syscall.SIGTERM))
	<-c2.exited
}

// A long outage with a small buffer: the buffer stays under max_bytes, and the samples
// missing from Prometheus are exactly the ones counted as dropped.
func TestPrometheusDiskBound(t *testing.T) {
	prom := newPromServer(t) // not started: the outage is on from the beginning
	cfg := testConfig(t, prom.writeURL())
	cfg.Buffer.MaxBytes = 1 << 20
	cfg.Buffer.SegmentSize = 64 << 10
	cfg.Sending.MaxBytesPerSend = 256 << 10
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	now := time.Now().Truncate(time.Second)
	base := now.Add(-40 * time.Minute).UnixMilli()
	const nSeries, nBatches = 200, 700
	for i := 0; i < nBatches; i++ {
		require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, i, base)))
		require.LessOrEqual(t, segmentBytes(t, cfg.Buffer.Directory), cfg.Buffer.MaxBytes)
	}
	require.Positive(t, e.tel.droppedTotal.Load(), "the outage must have overflowed the buffer")

	prom.start()
	total := int64(nSeries * nBatches)
	waitFor(t, 120*time.Second, "delivery or drop of every sample", func() bool {
		return e.tel.sentTotal.Load()+e.tel.droppedTotal.Load() == total
	})
	got := prom.query(testMetric+"[1h]", now)
	present := 0
	for s := 0; s < nSeries; s++ {
		for _, smp := range got[gaugeKey(s)] {
			i := (smp.Timestamp - base) / 1000
			require.Equal(t, float64(int(i)*1000+s), smp.Value)
			present++
		}
	}
	t.Logf("present %d, dropped %d of %d", present, e.tel.droppedTotal.Load(), total)
	assert.Equal(t, total-int64(present), e.tel.droppedTotal.Load(), "dropped count equals what is missing")
}

func segmentBytes(t *testing.T, dir string) int64 {
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	var n int64
	for _, s := range segs {
		fi, err := os.Stat(s)
		if err == nil {
			n += fi.Size()
		}
	}
	return n
}

func signalNotify(c chan os.Signal) { signal.Notify(c, syscall.SIGTERM) }

// settle polls cond until it holds or timeout passes; the caller's checks then report what is
// wrong in detail.
func settle(timeout time.Duration, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
}
