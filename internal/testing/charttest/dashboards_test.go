package charttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgetel/edgetel/internal/testing/testprog"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sigsyaml "sigs.k8s.io/yaml"
)

// passedThrough are the kubelet's own series the dashboards chart; the kubeedge receiver passes
// them on unchanged, so no metadata.yaml lists them.
var passedThrough = []string{
	"container_cpu_usage_seconds_total",  // /metrics/resource
	"container_memory_working_set_bytes", // /metrics/resource
	"node_cpu_usage_seconds_total",       // /metrics/resource
	"node_memory_working_set_bytes",      // /metrics/resource
}

// cloudcoreMetrics are what cloudcore's monitor server (job "cloudcore",
// collector.cloudcoreMetrics) serves: its one gauge (cloud/pkg/common/monitor/monitor.go, namespace
// KubeEdge, subsystem CloudHub) and the Go client's default process collector.
var cloudcoreMetrics = []string{
	"KubeEdge_CloudHub_connected_nodes",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
}

type dashPanel struct {
	Type        string `json:"type"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Datasource  *struct {
		Type string `json:"type"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	FieldConfig json.RawMessage `json:"fieldConfig"`
	Options     json.RawMessage `json:"options"`
	Panels      []dashPanel     `json:"panels"`
}

type dashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Links  []struct{ URL string } `json:"links"`
	Panels []dashPanel            `json:"panels"`
}

// panels flattens rows (collapsed rows hold their panels).
func (d dashboard) panels() []dashPanel {
	var out []dashPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func readDashboards(t *testing.T) map[string]dashboard {
	files, err := filepath.Glob(filepath.Join(RepoRoot(t), "examples", "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]dashboard{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var d dashboard
		require.NoError(t, json.Unmarshal(raw, &d), f)
		out[filepath.Base(f)] = d
	}
	return out
}

// grafanaVars stand in for Grafana's interval macros, which are not PromQL; $cluster and the other
// template variables sit inside label matcher strings and parse as they are.
var grafanaVars = strings.NewReplacer("${__rate_interval}", "5m", "$__rate_interval", "5m",
	"${__range}", "5m", "$__range", "5m", "${__interval}", "5m", "$__interval", "5m")

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// expressions returns every PromQL expression of d: panel targets and the selectors of its
// label_values variables.
func (d dashboard) expressions(t *testing.T) []string {
	var out []string
	for _, p := range d.panels() {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		require.NoError(t, json.Unmarshal(v.Query, &q), v.Name)
		m := labelValues.FindStringSubmatch(q.Query)
		require.NotNil(t, m, "variable %s: %q is not label_values(selector, label)", v.Name, q.Query)
		out = append(out, m[1])
	}
	return out
}

func metricNames(t *testing.T, expr string) []string {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	require.NoError(t, err, expr)
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			require.NotEmpty(t, vs.Name, "%s: select a metric by name", expr)
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// emitted lists every series name the project's components declare in their metadata.yaml
// (series into the pipeline under metrics, self-telemetry under telemetry.metrics).
func emitted(t *testing.T) map[string]bool {
	files, err := filepath.Glob(filepath.Join(RepoRoot(t), "*", "*", "metadata.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var md struct {
			Metrics   map[string]any `json:"metrics"`
			Telemetry struct {
				Metrics map[string]any `json:"metrics"`
			} `json:"telemetry"`
		}
		require.NoError(t, sigsyaml.Unmarshal(raw, &md), f)
		for n := range md.Metrics {
			out[n] = true
		}
		for n := range md.Telemetry.Metrics {
			out[n] = true
		}
	}
	for _, n := range append(append([]string{}, passedThrough...), cloudcoreMetrics...) {
		out[n] = true
	}
	return out
}

// TestDashboardExpressionsParseAndNameKnownMetrics parses every panel and variable expression with
// Prometheus' own parser and checks that each metric it names is one edgetel emits (a component's
// metadata.yaml), one the kubelet serves and the receiver passes through, or one cloudcore serves.
func TestDashboardExpressionsParseAndNameKnownMetrics(t *testing.T) {
	known := emitted(t)
	for file, d := range readDashboards(t) {
		used := map[string]bool{}
		for _, expr := range d.expressions(t) {
			for _, n := range metricNames(t, expr) {
				used[n] = true
				assert.True(t, known[n], "%s: %s is not a metric edgetel, the kubelet or cloudcore emits", file, n)
			}
		}
		assert.NotEmpty(t, used, file)
	}
	// The list above must not let anything through: a made-up name is refused.
	assert.False(t, known["kubeedge_node_online"])
}

func panelNamed(t *testing.T, d dashboard, title string) dashPanel {
	for _, p := range d.panels() {
		if p.Title == title {
			return p
		}
	}
	require.Failf(t, "no panel", "%s has no panel %q", d.UID, title)
	return dashPanel{}
}

func (p dashPanel) exprs() string {
	var s []string
	for _, tg := range p.Targets {
		s = append(s, tg.Expr)
	}
	return strings.Join(s, "\n")
}

// TestFleetOverviewDrillsDownFromSitesToNodes checks the fleet overview starts from regions and
// sites, that its node health table says per node whether the tunnel (edgecore), Ready and each
// kubelet endpoint answer, and that a node leads to the node detail.
func TestFleetOverviewDrillsDownFromSitesToNodes(t *testing.T) {
	d := readDashboards(t)["edge-fleet-overview.json"]
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	assert.Subset(t, vars, []string{"datasource", "cluster", "region", "site"})

	sites := panelNamed(t, d, "Sites: nodes connected")
	assert.Contains(t, sites.exprs(), "count by (region, site)")
	assert.Contains(t, string(sites.FieldConfig), "var-site=${__data.fields.site}")

	health := panelNamed(t, d, "Edge node health")
	exprs := health.exprs()
	for _, want := range []string{
		"kubeedge_node_connected{", "kubeedge_node_ready{",
		`up{cluster=~"$cluster", job="kubeedge", region=~"$region", site=~"$site", node_group=~"$node_group", metrics_path="/metrics/resource"}`,
		`metrics_path="/metrics/cadvisor"`, `metrics_path="/metrics"}`,
		"kubeedge_node_seconds_since_last_good_scrape{", "kubeedge_scrape_failures_total{",
	} {
		assert.Contains(t, exprs, want)
	}
	for _, tg := range health.Targets {
		assert.Contains(t, tg.Expr, "by (region, site, node)", "one row per node")
	}
	assert.Contains(t, string(health.FieldConfig), "/d/edgetel-node-detail/")
	assert.Contains(t, string(health.FieldConfig), "var-node=${__data.fields.node}")
	assert.Equal(t, "edgetel-node-detail", readDashboards(t)["edge-node-detail.json"].UID, "the link's target")
}

// TestFleetOverviewHasACloudcoreRow checks the cloudcore row charts what collector.cloudcoreMetrics
// scrapes, under the job the chart gives it (parity_test checks the chart's job name).
func TestFleetOverviewHasACloudcoreRow(t *testing.T) {
	d := readDashboards(t)["edge-fleet-overview.json"]
	in := false
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			in = p.Title == "cloudcore"
			for _, c := range p.Panels {
				exprs = append(exprs, c.exprs())
			}
			continue
		}
		if in {
			exprs = append(exprs, p.exprs())
		}
	}
	require.NotEmpty(t, exprs, "a row titled cloudcore with panels")
	all := strings.Join(exprs, "\n")
	assert.Contains(t, all, `KubeEdge_CloudHub_connected_nodes{cluster=~"$cluster", job="cloudcore"}`)
	assert.Contains(t, all, `up{cluster=~"$cluster", job="cloudcore"}`)
}

// TestNodeDetailLinksItsLogs checks the node detail has region and site variables and leads to
// the node's logs. The chart provisions no logs data source (only the Prometheus one), so the logs
// are a link into VictoriaLogs, filtered on the k8s.node.name resource attribute the receiver sets,
// and every panel queries Prometheus.
func TestNodeDetailLinksItsLogs(t *testing.T) {
	d := readDashboards(t)["edge-node-detail.json"]
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	assert.Subset(t, vars, []string{"region", "site", "node", "logs_url"})
	var urls []string
	for _, l := range d.Links {
		urls = append(urls, l.URL)
	}
	sort.Strings(urls)
	assert.Contains(t, strings.Join(urls, "\n"), "${logs_url}/select/vmui/#/?query=k8s.node.name%3A%3D%22${node:percentencode}%22")
	for _, p := range d.panels() {
		if p.Datasource != nil {
			assert.Equal(t, "prometheus", p.Datasource.Type, p.Title)
		}
	}
	panelNamed(t, d, "Logs")
	assert.Contains(t, panelNamed(t, d, "Kubelet endpoints answering").exprs(), `max by (metrics_path) (up{`)

	ds, err := os.ReadFile(filepath.Join(RepoRoot(t), "charts", "edgetel", "templates", "datasource.yaml"))
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(ds), "type:"), "one data source provisioned: a logs one would get a logs panel instead of the link")
}

// TestNodeDetailLogsQueryPicksTheNode runs the LogsQL filter of the node detail's logs link
// against a real VictoriaLogs holding records of edge-1 and edge-10 (with k8s.node.name, the
// resource attribute the receiver sets, as VictoriaLogs stores it): only edge-1's come back.
func TestNodeDetailLogsQueryPicksTheNode(t *testing.T) {
	bin := testprog.Path(t, "EDGETEL_VICTORIALOGS", "tool-victorialogs")
	var link string
	for _, l := range readDashboards(t)["edge-node-detail.json"].Links {
		if strings.HasPrefix(l.URL, "${logs_url}") {
			link = l.URL
		}
	}
	require.NotEmpty(t, link)
	_, frag, ok := strings.Cut(link, "#/?")
	require.True(t, ok, link)
	params, err := url.ParseQuery(strings.ReplaceAll(frag, "${node:percentencode}", url.QueryEscape("edge-1")))
	require.NoError(t, err)
	query := params.Get("query")
	require.Equal(t, `k8s.node.name:="edge-1"`, query)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-storageDataPath="+t.TempDir(), "-httpListenAddr="+addr, "-loggerLevel=WARN")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "VictoriaLogs ready")

	now := time.Now().UTC().Format(time.RFC3339Nano)
	body := fmt.Sprintf("{\"_msg\":\"one\",\"_time\":%q,\"k8s.node.name\":\"edge-1\"}\n{\"_msg\":\"ten\",\"_time\":%q,\"k8s.node.name\":\"edge-10\"}\n", now, now)
	resp, err := http.Post(base+"/insert/jsonline", "application/stream+json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var msgs []string
	require.Eventually(t, func() bool {
		msgs = nil
		resp, err := http.PostForm(base+"/select/logsql/query", url.Values{"query": {"* | fields _msg"}})
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
			msgs = append(msgs, sc.Text())
		}
		return len(msgs) == 2
	}, time.Minute, 200*time.Millisecond, "both records stored")

	resp, err = http.PostForm(base+"/select/logsql/query", url.Values{"query": {query + " | fields _msg"}})
	require.NoError(t, err)
	defer resp.Body.Close()
	msgs = nil
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		msgs = append(msgs, sc.Text())
	}
	assert.Equal(t, []string{`{"_msg":"one"}`}, msgs)
}
