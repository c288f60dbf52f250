// Package demotest runs the demo as `make demo` does (scripts/demo.sh with the real edgesim,
// edgetelcol and edgetel-query) and checks what issue #6 asks of it:
//
//   - within three minutes of the script reporting the pipeline running, the query API counts
//     every simulated node as up;
//   - every PromQL expression of the shipped dashboards (examples/dashboards) parses and returns
//     data from the demo's own data;
//   - Ctrl-C and SIGTERM stop every process cleanly, and a second run keeps and serves the data
//     of the first.
//
// The binaries come from $EDGETEL_BIN (`make test` builds them into ./bin), else the test builds
// them. The test takes three to five minutes and is skipped with -short.
package demotest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/cmd/query"
	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/internal/testing/repo"
	"github.com/edgetel/edgetel/internal/testing/testprog"
)

const (
	nodes = 10
	// downSite is the site scripts/demo.sh disconnects (EDGETEL_DEMO_DOWN_SITE's default): one
	// of the ten nodes is in it.
	downSite = "us-east-site-05"
	// firstDataBudget is issue #6's promise, counted from the script's "demo is running".
	firstDataBudget = 3 * time.Minute
	countQuery      = `count(count by (node) (up{job="kubeedge"} == 1))`
	runningLine     = "edgetel demo is running"
	stoppedLine     = "stopped; the data stays in"
)

var commands = []string{"edgesim", "edgetelcol", "edgetel-query"}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for three to five minutes")
	}
	root, err := repo.Root()
	require.NoError(t, err)
	d := &demo{root: root, bin: testprog.Commands(t, commands...), data: t.TempDir(), ports: freePorts(t)}

	// Run 1, with the edgeremotewrite exporter on. Its remote end is the demo's own edgetel-query,
	// which serves no write API: every request is refused (404). The exporter keeps refused data
	// and retries, so with a small buffer (8 MiB) the buffer fills and its oldest data is dropped
	// (reason max_bytes): the pipeline-health panels on the buffer, refusals and drops have data
	// from a real, counted failure.
	r1 := d.start(t, true)

	// The nodes of the site the demo takes down.
	f, err := fleet.Load(filepath.Join(d.data, "edgesim", "fleet.json"))
	require.NoError(t, err)
	require.Len(t, f.Nodes, nodes)
	var down []string
	for _, n := range f.Nodes {
		if n.Labels[kube.LabelSite] == downSite {
			down = append(down, n.Name)
		}
	}
	require.NotEmpty(t, down, "site %s is in the demo's fleet", downSite)
	up := nodes - len(down)

	// (a) Every node but the down site's counted as up through the query API within three minutes.
	var last string
	for {
		n, raw, err := d.instant(countQuery)
		if err == nil && n == up {
			t.Logf("first data: the query API counted %d nodes up %s after the demo reported running",
				up, time.Since(r1.running).Round(time.Second))
			break
		}
		last = fmt.Sprintf("%d nodes (err %v): %s", n, err, raw)
		if time.Since(r1.running) > firstDataBudget {
			t.Fatalf("%s over the query API did not reach %d within %s of the demo running; last: %s",
				countQuery, up, firstDataBudget, last)
		}
		time.Sleep(2 * time.Second)
	}
	// (a') Fresh to the last scrape: the collector's head reaches the query API, so the newest up
	// sample is less than two 15 s scrape intervals old.
	age, raw, err := d.instant(`floor(max(time() - timestamp(up{job="kubeedge"})))`)
	require.NoError(t, err, raw)
	assert.Less(t, age, 30, "seconds since the newest up sample, through edgetel-query: %s", raw)

	// With the head, the first data comes within seconds; the faults below stop the victim's
	// resource data, so first let every node have a minute of it (rate()[1m] needs two samples).
	for {
		n, raw, err := d.instant(`floor(min(count_over_time(node_cpu_usage_seconds_total{job="kubeedge"}[1m])))`)
		if err == nil && n >= 3 {
			break
		}
		if time.Since(r1.running) > firstDataBudget {
			t.Fatalf("a minute of resource data for every node did not come within %s: %d (err %v): %s", firstDataBudget, n, err, raw)
		}
		time.Sleep(2 * time.Second)
	}

	// Faults, so that the panels that are empty on a healthy demo have data of their own: see
	// injectFaults. The dashboard variables select the node the faults hit.
	victim := f.Nodes[0]
	require.NotContains(t, down, victim.Name, "the fault victim is not in the down site")
	vars := map[string]string{
		"cluster":    "demo", // examples/local/config.yaml's external label
		"node":       victim.Name,
		"site":       victim.Labels[kube.LabelSite],
		"region":     victim.Labels[kube.LabelRegion],
		"node_group": victim.Labels[kube.LabelNodeGroup],
	}
	for k, v := range vars {
		require.NotEmpty(t, v, "dashboard variable %s from the fleet file", k)
	}
	d.injectFaults(t, victim.Name)

	// (b) Every dashboard expression parses and returns data over the run so far, as a Grafana
	// panel asks for it (a range query). Data reaches the bucket in one-minute blocks, so the
	// faults show up a few minutes after they happened: poll until every expression has data.
	qs, err := query.DashboardQueries(filepath.Join(root, "examples", "dashboards"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(qs), 30)
	exprs := make([]string, len(qs))
	for i, q := range qs {
		exprs[i], err = query.Substitute(q.Expr, vars)
		require.NoError(t, err, "%s %s", q.File, q.Where)
	}
	from := r1.started.Add(-time.Minute)
	deadline := time.Now().Add(5 * time.Minute)
	var empty []int
	for {
		empty = empty[:0]
		for i, q := range qs {
			code, resp, body, err := d.api("/api/v1/query_range", url.Values{"query": {exprs[i]},
				"start": {unix(from)}, "end": {unix(time.Now())}, "step": {"15"}})
			require.NoError(t, err, "%s %s", q.File, q.Where)
			require.Equal(t, http.StatusOK, code, "%s %s: %s\n%s", q.File, q.Where, exprs[i], body)
			require.Equal(t, "matrix", resp.Data.ResultType, "%s %s", q.File, q.Where)
			if len(resp.Data.Result) == 0 {
				empty = append(empty, i)
			}
		}
		if len(empty) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Second)
	}
	for _, i := range empty {
		t.Errorf("%s %s returned no data: %s", qs[i].File, qs[i].Where, exprs[i])
	}
	t.Logf("all %d dashboard expressions returned data %s after the demo reported running",
		len(qs), time.Since(r1.running).Round(time.Second))
	d.checkSelfTelemetry(t, qs, from)
	d.checkAlerts(t, r1, down)
	d.checkCompactor(t)

	// What the first run leaves: the blocks in the bucket and what the query API answers over them.
	end := time.Now()
	window := fmt.Sprintf("%ds", int(end.Sub(from).Seconds()))
	samplesQuery := `sum(count_over_time(up{job="kubeedge"}[` + window + `]))`
	before, raw, err := d.instantAt(samplesQuery, end)
	require.NoError(t, err, raw)
	require.Positive(t, before, raw)
	blocks := d.blocks(t)
	require.NotEmpty(t, blocks)

	// Ctrl-C in a terminal: SIGINT to the whole process group.
	r1.stop(t, syscall.SIGINT, true)

	// Run 2, as `make demo` runs by default (no remote write): the first run's blocks are in the
	// bucket and queryable as soon as the script reports running.
	r2 := d.start(t, false)
	after, raw, err := d.instantAt(samplesQuery, end)
	require.NoError(t, err, raw)
	assert.GreaterOrEqual(t, after, before, "samples of the first run over the query API, right after a restart")
	n, raw, err := d.instant(countQuery)
	require.NoError(t, err, raw)
	assert.Equal(t, up, n, "nodes up right after a restart (the first run's last blocks)")
	again := d.blocks(t)
	assert.Subset(t, again, blocks, "blocks of the first run still in the bucket")
	t.Logf("second run: %d blocks in the bucket (%d after the first run), %d samples of up over the first run's window (%d before)",
		len(again), len(blocks), after, before)

	// SIGTERM to the script alone, as a supervisor would stop it.
	r2.stop(t, syscall.SIGTERM, false)
	assert.GreaterOrEqual(t, len(d.blocks(t)), len(again), "blocks in the bucket after the second run")
}

// checkAlerts follows the alert list URL the demo prints: the ruler's site-down alert fires for
// the site the demo took down, once, and its description names the site's nodes.
func (d *demo) checkAlerts(t *testing.T, r *run, down []string) {
	t.Helper()
	alertsURL := d.url("QUERY", "/api/v1/alerts")
	require.Contains(t, r.out.String(), alertsURL, "the demo prints the alert list's URL")
	type alert struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		State       string            `json:"state"`
	}
	var site []alert
	var body []byte
	require.Eventually(t, func() bool {
		resp, err := http.Get(alertsURL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ = io.ReadAll(resp.Body)
		var out struct {
			Data struct {
				Alerts []alert `json:"alerts"`
			} `json:"data"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out) != nil {
			return false
		}
		site = site[:0]
		for _, a := range out.Data.Alerts {
			if a.Labels["alertname"] == "EdgetelSiteDisconnected" && a.State == "firing" {
				site = append(site, a)
			}
		}
		return len(site) > 0
	}, 3*time.Minute, 5*time.Second, "the site-down alert fires: %s", body)
	require.Len(t, site, 1, "%s", body)
	assert.Equal(t, downSite, site[0].Labels["site"])
	for _, n := range down {
		assert.Contains(t, site[0].Annotations["description"], n, "the alert names the site's disconnected nodes")
	}
}

// injectFaults makes, for real, the data that a healthy demo does not produce:
//   - node's tunnel drops (edgesim's /api/disconnect) for two scrape rounds and comes back:
//     scrape failures, up == 0, a tunnel disconnect;
//   - edgesim's clock jumps 15 minutes ahead (/api/advance, 60 steps of 15s), as an edge node
//     with a wrong clock: the objstore exporter drops its timestamped samples as too far in the
//     future (otelcol_exporter_objstore_samples_dropped). edgesim's clock stays ahead for the
//     rest of the run, so cAdvisor and resource data stop; the panels still have the earlier data;
//   - the bucket becomes unreachable until a block upload has failed
//     (otelcol_exporter_objstore_upload_failures), then comes back and the backlog is uploaded.
//
// The remote-write rejections come from the demo's configuration (see TestDemo).
func (d *demo) injectFaults(t *testing.T, node string) {
	t.Helper()
	bucket := filepath.Join(d.data, "bucket")
	aside := bucket + ".outage"
	require.NoError(t, os.Rename(bucket, aside))
	// A symlink to itself: every access fails (ELOOP), as every request to an unreachable object
	// store does. edgetel-query keeps serving its cached blocks; a missing directory instead would
	// read as an empty bucket.
	require.NoError(t, os.Symlink(filepath.Base(bucket), bucket))
	restored := false
	restore := func() {
		if !restored {
			restored = true
			require.NoError(t, os.Remove(bucket))
			require.NoError(t, os.Rename(aside, bucket))
		}
	}
	defer restore()

	stats := func() int64 {
		var s struct {
			NoSession int64 `json:"no_session"`
		}
		require.NoError(t, json.Unmarshal(d.admin(t, http.MethodGet, "/api/stats"), &s))
		return s.NoSession
	}
	base := stats()
	d.admin(t, http.MethodPost, "/api/disconnect?nodes="+node)
	// Three endpoints a scrape round: two rounds against the missing session.
	waitFor(t, time.Minute, "two failed scrape rounds of "+node, func() bool { return stats() >= base+6 })
	d.admin(t, http.MethodPost, "/api/reconnect?nodes="+node)

	d.admin(t, http.MethodPost, "/api/advance?steps=60")
	// 15 minutes ahead: inside the demo receiver's max_future_skew (30m), beyond the exporter's.
	waitFor(t, time.Minute, "samples dropped as too far in the future", func() bool {
		return d.selfMetric(t, "otelcol_exporter_objstore_samples_dropped", `reason="clock_skew"`) > 0
	})

	// A block is cut every minute; its upload fails while the bucket is gone.
	waitFor(t, 3*time.Minute, "a failed block upload", func() bool {
		return d.selfMetric(t, "otelcol_exporter_objstore_upload_failures", "") > 0
	})
	restore()
}

// checkSelfTelemetry checks that the data of the pipeline-health dashboard's own-telemetry panels
// (every otelcol_* metric it names) is the collector's own, scraped into its pipeline as job
// edgetelcol (examples/local/config.yaml's prometheus/self), and reached the query API.
func (d *demo) checkSelfTelemetry(t *testing.T, qs []query.DashboardQuery, from time.Time) {
	t.Helper()
	names := map[string]bool{}
	for _, q := range qs {
		if q.File != "edgetel-pipeline-health.json" {
			continue
		}
		for _, m := range otelcolMetricRe.FindAllString(q.Expr, -1) {
			names[m] = true
		}
	}
	require.GreaterOrEqual(t, len(names), 5, "the pipeline-health dashboard's own-telemetry metrics")
	for name := range names {
		expr := fmt.Sprintf(`count by (job) (%s{job="edgetelcol"})`, name)
		code, resp, body, err := d.api("/api/v1/query_range", url.Values{"query": {expr},
			"start": {unix(from)}, "end": {unix(time.Now())}, "step": {"15"}})
		require.NoError(t, err, expr)
		require.Equal(t, http.StatusOK, code, "%s: %s", expr, body)
		assert.Len(t, resp.Data.Result, 1, "%s: the collector's own series of %s in the query API: %s", expr, name, body)
	}
}

var otelcolMetricRe = regexp.MustCompile(`\botelcol_[a-z0-9_]+`)

// checkCompactor requires, when the demo runs Thanos' compactor ($EDGETEL_THANOS, as `make test`
// sets it), that it has gone over the demo's bucket successfully twice without halting: a stock
// compactor accepts the bucket the objstore exporter writes, out-of-order blocks included.
func (d *demo) checkCompactor(t *testing.T) {
	t.Helper()
	if os.Getenv("EDGETEL_THANOS") == "" {
		t.Log("EDGETEL_THANOS is not set: the demo ran without Thanos' compactor")
		return
	}
	metric := func(body, name string) float64 {
		for line := range strings.SplitSeq(body, "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err, line)
				return f
			}
		}
		return -1
	}
	var body string
	waitFor(t, 3*time.Minute, "two compaction runs over the demo's bucket", func() bool {
		res, err := http.Get(d.url("COMPACT", "/metrics"))
		if err != nil {
			return false
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		body = string(b)
		return err == nil && metric(body, "thanos_compact_iterations_total") >= 2
	})
	assert.Zero(t, metric(body, "thanos_compact_halted"), "the compactor did not halt on the demo's bucket")
}

// demo is one data directory and set of ports, shared by the runs of a test.
type demo struct {
	root, bin, data string
	ports           map[string]int
}

// portVars are the demo's port variables (scripts/demo.sh, examples/local/config.yaml).
var portVars = []string{"CLOUDCORE", "ADMIN", "HEALTH", "TELEMETRY", "QUERY", "HEAD", "COMPACT"}

func (d *demo) url(port, path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", d.ports[port], path)
}

type run struct {
	cmd              *exec.Cmd
	out              *syncBuffer
	done             chan struct{}
	err              error
	started, running time.Time
}

// start runs scripts/demo.sh in its own process group and waits until it reports running.
func (d *demo) start(t *testing.T, remoteWrite bool) *run {
	t.Helper()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == "NODES" || k == "BIN" || k == "EDGETEL_REMOTE_WRITE_URL" || strings.HasPrefix(k, "EDGETEL_DEMO_")
	})
	env = append(env, "NODES="+strconv.Itoa(nodes), "BIN="+d.bin, "EDGETEL_DEMO_DATA="+d.data)
	for _, p := range portVars {
		env = append(env, fmt.Sprintf("EDGETEL_DEMO_%s_PORT=%d", p, d.ports[p]))
	}
	if remoteWrite {
		env = append(env, "EDGETEL_REMOTE_WRITE_URL="+d.url("QUERY", "/api/v1/write"), "EDGETEL_DEMO_RW_MAX_BYTES=8388608")
	}
	r := &run{out: &syncBuffer{}, done: make(chan struct{}), started: time.Now()}
	r.cmd = exec.Command(filepath.Join(d.root, "scripts", "demo.sh"))
	r.cmd.Dir, r.cmd.Env = d.root, env
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, r.cmd.Start())
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
		if t.Failed() {
			t.Logf("demo.sh output:\n%s", r.out)
			d.logTails(t)
		}
	})
	// Each of the three processes gets 60s to come up in the script.
	deadline := time.After(200 * time.Second)
	for !strings.Contains(r.out.String(), runningLine) {
		select {
		case <-r.done:
			t.Fatalf("demo.sh exited (%v) before reporting the demo running:\n%s", r.err, r.out)
		case <-deadline:
			t.Fatalf("demo.sh did not report the demo running:\n%s", r.out)
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.running = time.Now()
	t.Logf("demo.sh reported running after %s", r.running.Sub(r.started).Round(100*time.Millisecond))
	return r
}

// stop signals the script (or its whole process group, as Ctrl-C in a terminal does) and checks
// that it stopped every process cleanly: exit status 0, the stop message last and alone, and no
// process of the group left.
func (r *run) stop(t *testing.T, sig syscall.Signal, group bool) {
	t.Helper()
	pid := r.cmd.Process.Pid
	target := pid
	if group {
		target = -pid
	}
	require.NoError(t, syscall.Kill(target, sig))
	select {
	case <-r.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("demo.sh did not stop within 2 minutes of %s:\n%s", sig, r.out)
	}
	out := r.out.String()
	require.NoError(t, r.err, "demo.sh after %s:\n%s", sig, out)
	assert.Equal(t, 1, strings.Count(out, stoppedLine), "one stop message after %s:\n%s", sig, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	assert.Contains(t, lines[len(lines)-1], stoppedLine, "the stop message is the last line after %s:\n%s", sig, out)
	assert.NotContains(t, out, "exited", "no process reported as failed after %s:\n%s", sig, out)
	assert.ErrorIs(t, syscall.Kill(-pid, 0), syscall.ESRCH, "processes of the demo still running after %s", sig)
}

type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// api asks the demo's query API.
func (d *demo) api(path string, params url.Values) (int, apiResponse, string, error) {
	var resp apiResponse
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url("QUERY", path), strings.NewReader(params.Encode()))
	if err != nil {
		return 0, resp, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, resp, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, resp, "", err
	}
	err = json.Unmarshal(body, &resp)
	return res.StatusCode, resp, string(body), err
}

func (d *demo) instant(expr string) (int, string, error) { return d.instantAt(expr, time.Time{}) }

// instantAt evaluates an expression with one integer result (0 when the result is empty) at ts,
// or now when ts is zero.
func (d *demo) instantAt(expr string, ts time.Time) (int, string, error) {
	params := url.Values{"query": {expr}}
	if !ts.IsZero() {
		params.Set("time", unix(ts))
	}
	code, resp, body, err := d.api("/api/v1/query", params)
	switch {
	case err != nil:
		return 0, body, err
	case code != http.StatusOK:
		return 0, body, fmt.Errorf("HTTP %d", code)
	case len(resp.Data.Result) == 0:
		return 0, body, nil
	case len(resp.Data.Result) > 1 || len(resp.Data.Result[0].Value) != 2:
		return 0, body, fmt.Errorf("want one sample")
	}
	s, _ := resp.Data.Result[0].Value[1].(string)
	n, err := strconv.Atoi(s)
	return n, body, err
}

// admin calls edgesim's admin API and returns the body of a 200 answer.
func (d *demo) admin(t *testing.T, method, path string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, d.url("ADMIN", path), nil)
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, "edgesim %s %s: %s", method, path, body)
	return body
}

// selfMetric sums the samples of one metric (with labels containing match) on edgetelcol's own
// metrics endpoint.
func (d *demo) selfMetric(t *testing.T, name, match string) float64 {
	t.Helper()
	res, err := http.Get(d.url("TELEMETRY", "/metrics"))
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	sum := 0.0
	for line := range strings.SplitSeq(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') || !strings.Contains(rest, match) {
			continue
		}
		v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		require.NoError(t, err, line)
		sum += v
	}
	return sum
}

// blocks lists the complete blocks (with meta.json) in the demo's bucket.
func (d *demo) blocks(t *testing.T) []string {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(d.data, "bucket", "*", "meta.json"))
	require.NoError(t, err)
	out := make([]string, len(metas))
	for i, m := range metas {
		out[i] = filepath.Base(filepath.Dir(m))
	}
	return out
}

func (d *demo) logTails(t *testing.T) {
	logs, _ := filepath.Glob(filepath.Join(d.data, "logs", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("%s (tail):\n%s", filepath.Base(l), b)
	}
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, limit)
		}
		time.Sleep(time.Second)
	}
}

// freePorts picks a free loopback port for each of the demo's port variables.
func freePorts(t *testing.T) map[string]int {
	t.Helper()
	ports := map[string]int{}
	var lns []net.Listener
	for _, p := range portVars {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		lns = append(lns, ln)
		ports[p] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		require.NoError(t, ln.Close())
	}
	return ports
}

func unix(ts time.Time) string {
	return strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64)
}

// syncBuffer is a bytes.Buffer for a process's output, read while the process runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
