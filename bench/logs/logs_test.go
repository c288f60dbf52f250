// Package logs runs the container-logs path end to end with real processes: edgesim's log pods
// → edgetelcol (kubeedge receiver, cloudcore transport, otlp_http exporter with a persistent
// sending queue) → VictoriaLogs, and checks in VictoriaLogs that every numbered line arrived
// exactly once, in order, across a tunnel cut, a store outage and a SIGKILL of the collector.
package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/internal/testing/testprog"
)

var (
	buildOnce    sync.Once
	collectorBin string
	buildDir     string
	buildErr     error
)

// TestMain removes the edgetelcol the tests built, if they built one.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// collector returns edgetelcol: EDGETEL_EDGETELCOL, or built once from this tree on first use
// (a run that skips for want of VictoriaLogs builds nothing).
func collector(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		if collectorBin = os.Getenv("EDGETEL_EDGETELCOL"); collectorBin != "" {
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "logs-bin-"); buildErr != nil {
			return
		}
		collectorBin = filepath.Join(buildDir, "edgetelcol")
		out, err := exec.Command("go", "build", "-o", collectorBin, "github.com/edgetel/edgetel/cmd/edgetelcol").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building edgetelcol: %w\n%s", err, out)
		}
	})
	require.NoError(tb, buildErr)
	return collectorBin
}

const (
	nodes            = 120
	containersPerPod = 3
	stderrEvery      = 5
)

// env is the running test system.
type env struct {
	t       testing.TB
	dir     string
	sim     *edgesim.Sim
	vlBin   string
	vlAddr  string
	vl      *harness.Process
	col     *harness.Process
	config  string
	telAddr string
}

func TestLogsExactlyOnceAcrossFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: real processes for minutes")
	}
	e := &env{t: t, dir: t.TempDir(), vlBin: testprog.Path(t, "EDGETEL_VICTORIALOGS", "tool-victorialogs")}
	collector(t)
	var err error
	e.sim, err = edgesim.New(edgesim.Config{Nodes: nodes, Seed: 3, Listen: "127.0.0.1:0", TLSDir: filepath.Join(e.dir, "tls"),
		FleetFile: filepath.Join(e.dir, "fleet.json"), ManualStep: true,
		Logs: edgesim.LogsConfig{PodsPerNode: 1, ContainersPerPod: containersPerPod, Rate: 1, Burst: 2, StderrEvery: stderrEvery,
			PollInterval: 250 * time.Millisecond}})
	require.NoError(t, err)
	require.NoError(t, e.sim.Start(context.Background()))
	t.Cleanup(func() { e.sim.Close() })
	e.vlAddr, err = harness.FreeAddr()
	require.NoError(t, err)
	e.startVL()
	// The last node is not in the fleet file yet: it joins later.
	full := e.sim.Fleet()
	fleetFile := filepath.Join(e.dir, "fleet.json")
	require.NoError(t, fleet.Save(fleetFile, fleet.File{Nodes: full.Nodes[:nodes-1]}))
	e.writeConfig([]string{"edge-apps"}, fmt.Sprintf(vlExporter, e.vlAddr), true)
	e.startCollector()
	streams := nodes * containersPerPod * 2 // stdout and stderr of every container

	// Every stream delivers.
	e.waitComplete(time.Now(), streams-containersPerPod*2, 3*time.Minute)

	// A node joins; another one's Ready condition flaps.
	require.NoError(t, fleet.Save(fleetFile, full))
	e.waitEvents(time.Minute, "kubeedge.node.join edge-00120")
	flap := e.sim.Fleet()
	flap.Nodes[1].Ready = "false"
	require.NoError(t, fleet.Save(fleetFile, flap))
	e.waitEvents(time.Minute, "kubeedge.node.not_ready edge-00002")
	require.NoError(t, fleet.Save(fleetFile, full))
	e.waitEvents(time.Minute, "kubeedge.node.ready edge-00002")
	e.waitComplete(time.Now(), streams, 3*time.Minute)

	// (a) A third of the nodes lose their tunnels for a while, then come back.
	cut := make([]string, 0, nodes/3)
	for i := 0; i < nodes; i += 3 {
		cut = append(cut, fmt.Sprintf("edge-%05d", i+1))
	}
	e.sim.Disconnect(cut...)
	time.Sleep(8 * time.Second) // lines keep being written on the cut nodes
	e.sim.Reconnect(cut...)
	e.waitComplete(time.Now(), streams, 3*time.Minute)
	var tunnel []string
	for _, n := range cut {
		tunnel = append(tunnel, "kubeedge.node.tunnel_disconnected "+n, "kubeedge.node.tunnel_reconnected "+n)
	}
	e.waitEvents(time.Minute, tunnel...)
	m := e.metrics()
	require.Positive(t, m[`otelcol_receiver_kubeedge_log_stream_ends{reason="eof"}`], "the cut ended streams")
	require.Positive(t, m[`otelcol_receiver_kubeedge_log_stream_ends{reason="http_status"}`], "reopening failed while cut")

	// (b) VictoriaLogs goes away and comes back on the same data.
	require.NoError(t, e.vl.Stop(30*time.Second))
	require.Eventually(t, func() bool { return e.metrics()["otelcol_exporter_queue_size"] > 0 }, time.Minute, 200*time.Millisecond,
		"records wait in the persistent queue while the store is down")
	time.Sleep(5 * time.Second)
	e.startVL()
	e.waitComplete(time.Now(), streams, 3*time.Minute)

	// (c) The collector is SIGKILLed mid-stream and started again on the same storage.
	require.NoError(t, e.col.Kill())
	time.Sleep(3 * time.Second)
	e.startCollector()
	e.waitComplete(time.Now(), streams, 3*time.Minute)
	require.Positive(t, e.metrics()["otelcol_receiver_kubeedge_log_lines_duplicate"],
		"the restarted collector resumed from the saved positions and skipped the second's repeats")
	require.NoError(t, e.col.Stop(30*time.Second))
}

func (e *env) startVL() {
	e.t.Helper()
	p, err := harness.Start("victorialogs", e.dir, e.vlBin, "-storageDataPath="+filepath.Join(e.dir, "vl-data"),
		"-httpListenAddr="+e.vlAddr, "-loggerLevel=WARN")
	require.NoError(e.t, err)
	e.vl = p
	e.t.Cleanup(func() { p.Stop(30 * time.Second) })
	require.Eventually(e.t, func() bool {
		resp, err := http.Get("http://" + e.vlAddr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "VictoriaLogs ready")
}

// vlExporter sends to VictoriaLogs through the persistent sending queue, retrying for ever.
const vlExporter = `  otlp_http:
    logs_endpoint: http://%s/insert/opentelemetry/v1/logs
    retry_on_failure: {enabled: true, initial_interval: 200ms, max_interval: 2s, max_elapsed_time: 0s}
    sending_queue: {enabled: true, storage: file_storage, queue_size: 100000, num_consumers: 4}`

// lifecycleConfig makes the receiver scrape /metrics too (into a debug exporter), whose health
// gives the tunnel lifecycle records, and emit lifecycle records.
const lifecycleConfig = `    collection_interval: 3s
    scrape_timeout: 3s
    endpoints: {cadvisor: {enabled: false}, resource: {enabled: false}}
`

// writeConfig writes edgetelcol's configuration: the kubeedge receiver following the pods of
// namespaces, and one exporter (YAML under exporters:, its name first); with lifecycle, lifecycle
// records and a metrics pipeline too.
func (e *env) writeConfig(namespaces []string, exporter string, lifecycle bool) {
	e.t.Helper()
	files := e.sim.TLSFiles()
	var err error
	e.telAddr, err = harness.FreeAddr()
	require.NoError(e.t, err)
	_, port, _ := strings.Cut(e.telAddr, ":")
	name, _, _ := strings.Cut(strings.TrimSpace(exporter), ":")
	receiverExtra, logsExtra, metricsPipeline := "", "", ""
	if lifecycle {
		receiverExtra = lifecycleConfig
		logsExtra = "      lifecycle_events: true\n"
		exporter += "\n" + debugExporter
		metricsPipeline = "    metrics:\n      receivers: [kubeedge]\n      exporters: [debug]\n"
	}
	cfg := fmt.Sprintf(`extensions:
  file_storage:
    directory: %[1]s/storage
    create_directory: true
receivers:
  kubeedge:
    discovery:
      mode: file
      file: {path: %[1]s/fleet.json, refresh_interval: 1s}
%[8]s    transport:
      mode: cloudcore
      cloudcore:
        endpoints: [%[2]s]
        tls: {ca_file: %[3]s}
    logs:
      namespaces: [%[6]s]
      split_streams: true
      storage: file_storage
      flush_interval: 500ms
      retry_interval: 500ms
      max_retry_interval: 2s
%[9]sexporters:
%[4]s
service:
  extensions: [file_storage]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus: {host: 127.0.0.1, port: %[5]s}
  pipelines:
    logs:
      receivers: [kubeedge]
      exporters: [%[7]s]
%[10]s`, e.dir, e.sim.Addr(), files.CAFile, exporter, port, strings.Join(namespaces, ", "), name,
		receiverExtra, logsExtra, metricsPipeline)
	e.config = filepath.Join(e.dir, "edgetelcol.yaml")
	require.NoError(e.t, os.WriteFile(e.config, []byte(cfg), 0o600))
}

// collectorUp fails the test with the collector's log when it has exited.
func (e *env) collectorUp() {
	e.t.Helper()
	if exited, err := e.col.Exited(); exited {
		log, _ := os.ReadFile(filepath.Join(e.dir, "edgetelcol.log"))
		if len(log) > 4000 {
			log = log[len(log)-4000:]
		}
		e.t.Fatalf("edgetelcol exited (%v):\n%s", err, log)
	}
}

func (e *env) startCollector() {
	e.t.Helper()
	p, err := harness.Start("edgetelcol", e.dir, collectorBin, "--config", e.config)
	require.NoError(e.t, err)
	e.col = p
	e.t.Cleanup(func() { p.Stop(30 * time.Second) })
}

// metrics scrapes the collector's own metrics: series by name with their labels, summed over
// the labels they have beyond those.
func (e *env) metrics() map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + e.telAddr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		i := strings.LastIndexByte(l, ' ')
		if l == "" || l[0] == '#' || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(l[:i], "{")
		out[name] += v
		if j := strings.Index(labels, `reason="`); j >= 0 {
			reason, _, _ := strings.Cut(labels[j+len(`reason="`):], `"`)
			out[name+`{reason="`+reason+`"}`] += v
		}
	}
	return out
}

// event is a lifecycle record as VictoriaLogs returns it.
type event struct {
	Name     string `json:"event_name"`
	Attr     string `json:"event.name"`
	Node     string `json:"k8s.node.name"`
	Region   string `json:"region"`
	Site     string `json:"site"`
	Severity string `json:"severity_text"`
}

// waitEvents waits until VictoriaLogs holds a lifecycle record for every "<event name> <node>"
// of want, each with the node's region and site, a severity and its event name twice (the
// record's field and the attribute).
func (e *env) waitEvents(timeout time.Duration, want ...string) {
	e.t.Helper()
	byName := map[string]int{}
	for i, n := range e.sim.Fleet().Nodes {
		byName[n.Name] = i
	}
	var missing []string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		got := map[string]event{}
		q := url.Values{"query": {`"event.name":* | fields event_name, event.name, k8s.node.name, region, site, severity_text`}}
		resp, err := http.PostForm("http://"+e.vlAddr+"/select/logsql/query", q)
		if err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var ev event
				if json.Unmarshal(sc.Bytes(), &ev) == nil {
					got[ev.Name+" "+ev.Node] = ev
				}
			}
			resp.Body.Close()
		}
		missing = missing[:0]
		for _, w := range want {
			ev, ok := got[w]
			if !ok {
				missing = append(missing, w)
				continue
			}
			n := e.sim.Fleet().Nodes[byName[ev.Node]]
			require.Equal(e.t, ev.Name, ev.Attr, w)
			require.Equal(e.t, n.Labels[kube.LabelRegion], ev.Region, w)
			require.Equal(e.t, n.Labels[kube.LabelSite], ev.Site, w)
			require.Contains(e.t, []string{"INFO", "WARN"}, ev.Severity, w)
		}
		if len(missing) == 0 {
			e.t.Logf("lifecycle records in VictoriaLogs: %d of %d wanted, with the nodes' attributes", len(want), len(want))
			return
		}
		time.Sleep(time.Second)
	}
	e.t.Fatalf("lifecycle records missing after %v: %v", timeout, missing)
}

// line is a record as VictoriaLogs returns it.
type line struct {
	Time      time.Time `json:"_time"`
	Msg       string    `json:"_msg"`
	IOStream  string    `json:"log.iostream"`
	Node      string    `json:"k8s.node.name"`
	Region    string    `json:"region"`
	Site      string    `json:"site"`
	Container string    `json:"k8s.container.name"`
}

// query returns every stored record.
func (e *env) query() ([]line, error) {
	q := url.Values{"query": {`"k8s.container.name":* | fields _time, _msg, log.iostream, k8s.node.name, region, site, k8s.container.name`}}
	resp, err := http.PostForm("http://"+e.vlAddr+"/select/logsql/query", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("LogsQL query: HTTP %d", resp.StatusCode)
	}
	var out []line
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("LogsQL answer %q: %w", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// waitComplete waits until every stream holds all its lines written up to `until`, then checks
// that every stream's lines are exactly its lines 0..k, once each, with their kubelet
// timestamps (so in order), and with the node's attributes.
func (e *env) waitComplete(until time.Time, streams int, timeout time.Duration) {
	e.t.Helper()
	want := e.sim.LogLinesBefore(until)
	var problem string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		e.collectorUp()
		lines, err := e.query()
		if err != nil {
			problem = err.Error()
			time.Sleep(time.Second)
			continue
		}
		var done bool
		done, problem = e.check(lines, want, streams)
		if done {
			e.t.Logf("%d records in VictoriaLogs, every stream complete to line %d, none twice", len(lines), want)
			return
		}
		if strings.HasPrefix(problem, "FATAL") {
			e.t.Fatal(problem)
		}
		time.Sleep(2 * time.Second)
	}
	e.t.Fatalf("not complete in %v: %s", timeout, problem)
}

// check reports whether every stream is complete to line want (exclusive); duplicates, wrong
// timestamps or attributes are FATAL (they never go away), gaps are not yet complete.
func (e *env) check(lines []line, want int64, streams int) (bool, string) {
	byStream := map[string][]int64{}
	fleet := e.sim.Fleet()
	for _, l := range lines {
		prefix, seqText, ok := strings.Cut(l.Msg, " seq=")
		seq, err := strconv.ParseInt(seqText, 10, 64)
		if !ok || err != nil {
			return false, fmt.Sprintf("FATAL: unexpected record %q", l.Msg)
		}
		if !l.Time.Equal(e.sim.LogLineTime(seq)) {
			return false, fmt.Sprintf("FATAL: %q has time %v, the kubelet wrote it at %v", l.Msg, l.Time, e.sim.LogLineTime(seq))
		}
		wantIO := "stdout"
		if e.sim.IsStderr(seq) {
			wantIO = "stderr"
		}
		if l.IOStream != wantIO {
			return false, fmt.Sprintf("FATAL: %q has log.iostream %q", l.Msg, l.IOStream)
		}
		var n int
		if _, err := fmt.Sscanf(l.Node, "edge-%05d", &n); err != nil || n < 1 || n > len(fleet.Nodes) {
			return false, fmt.Sprintf("FATAL: %q has node %q", l.Msg, l.Node)
		}
		node := fleet.Nodes[n-1]
		if !strings.Contains(prefix, "/"+node.Name+"-app-") || l.Region != node.Labels[kube.LabelRegion] ||
			l.Site != node.Labels[kube.LabelSite] || !strings.HasSuffix(prefix, "/"+l.Container) {
			return false, fmt.Sprintf("FATAL: %q has attributes node=%s region=%s site=%s container=%s", l.Msg, l.Node, l.Region, l.Site, l.Container)
		}
		key := prefix + "/" + l.IOStream
		byStream[key] = append(byStream[key], seq)
	}
	if len(byStream) < streams {
		return false, fmt.Sprintf("%d of %d streams have records", len(byStream), streams)
	}
	incomplete := 0
	for key, seqs := range byStream {
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
		stderr := strings.HasSuffix(key, "/stderr")
		next := int64(0)
		for _, s := range seqs {
			for e.sim.IsStderr(next) != stderr {
				next++
			}
			if s != next {
				if s < next {
					return false, fmt.Sprintf("FATAL: %s line %d twice", key, s)
				}
				// Batches may land out of order for a moment (the queue has several consumers).
				return false, fmt.Sprintf("%s lines %d..%d missing", key, next, s-1)
			}
			next++
		}
		for next < want && e.sim.IsStderr(next) != stderr {
			next++
		}
		if next < want {
			incomplete++
		}
	}
	if incomplete > 0 {
		return false, fmt.Sprintf("%d streams not yet at line %d", incomplete, want)
	}
	return true, ""
}
