package query

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/edgetel/edgetel/internal/testing/edgesim/captures"
	"github.com/edgetel/edgetel/internal/testing/repo"
)

const dashboardDir = "../../../examples/dashboards"

// testDashboardVars select everything, and the flaky node for the node dashboard.
var testDashboardVars = map[string]string{"cluster": ".*", "region": ".*", "site": ".*", "node_group": ".*", "node": "edge-4"}

// dashboardMetrics is every metric name the shipped dashboards query: the names the receiver,
// the exporters and the kubelet must produce.
var dashboardMetrics = []string{
	"KubeEdge_CloudHub_connected_nodes",
	"container_cpu_usage_seconds_total",
	"container_memory_working_set_bytes",
	"kubeedge_node_connected",
	"kubeedge_node_disconnects_total",
	"kubeedge_node_ready",
	"kubeedge_node_seconds_since_last_good_scrape",
	"kubeedge_scrape_failures_total",
	"node_cpu_usage_seconds_total",
	"node_memory_working_set_bytes",
	"otelcol_exporter_edgeremotewrite_buffer_bytes",
	"otelcol_exporter_edgeremotewrite_buffer_disk_bytes",
	"otelcol_exporter_edgeremotewrite_oldest_sample_age_seconds",
	"otelcol_exporter_edgeremotewrite_samples_dropped",
	"otelcol_exporter_objstore_blocks_uploaded",
	"otelcol_exporter_objstore_samples_dropped",
	"otelcol_exporter_objstore_upload_failures",
	"otelcol_exporter_objstore_upload_lag",
	"otelcol_receiver_kubeedge_scrape_failures",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"scrape_duration_seconds",
	"scrape_samples_scraped",
	"up",
}

func parsedDashboardQueries(t *testing.T) map[DashboardQuery]parser.Expr {
	t.Helper()
	qs, err := DashboardQueries(dashboardDir)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(qs), 30)
	out := map[DashboardQuery]parser.Expr{}
	for _, q := range qs {
		s, err := Substitute(q.Expr, testDashboardVars)
		require.NoError(t, err, "%s %s", q.File, q.Where)
		// The parser Prometheus' engine uses by default (no experimental functions).
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(s)
		require.NoError(t, err, "%s %s: %s", q.File, q.Where, s)
		out[q] = expr
	}
	return out
}

func TestDashboardExpressionsParse(t *testing.T) {
	var names []string
	for _, expr := range parsedDashboardQueries(t) {
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && !slices.Contains(names, vs.Name) {
				require.NotEmpty(t, vs.Name, "every selector names its metric")
				names = append(names, vs.Name)
			}
			return nil
		})
	}
	slices.Sort(names)
	assert.Equal(t, dashboardMetrics, names)
}

// TestDashboardsReturnDataOnTestFleet runs every dashboard expression against blocks holding
// the series the dashboards expect, through the query API, and requires data from each.
func TestDashboardsReturnDataOnTestFleet(t *testing.T) {
	qs := parsedDashboardQueries(t)
	srv := edgetelServer(t, fleetBlocks(t), DefaultEngineOptions)
	start, end := unix(testFleet.base.Add(time.Hour)), unix(testFleet.end())
	for q, expr := range qs {
		code, body := get(t, srv, "/api/v1/query_range", v("query", expr.String(), "start", start, "end", end, "step", "300"), false)
		require.Equal(t, http.StatusOK, code, "%s %s: %s", q.File, q.Where, body)
		var data struct {
			Result []json.RawMessage `json:"result"`
		}
		require.NoError(t, json.Unmarshal(decode(t, body).Data, &data))
		assert.NotEmpty(t, data.Result, "%s %s returned no data: %s", q.File, q.Where, expr)
	}
}

func TestDashboardStructure(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 3)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var d struct {
			UID        string `json:"uid"`
			Title      string `json:"title"`
			Templating struct {
				List []struct {
					Name  string          `json:"name"`
					Type  string          `json:"type"`
					Query json.RawMessage `json:"query"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				ID         int    `json:"id"`
				Type       string `json:"type"`
				Title      string `json:"title"`
				Datasource struct {
					Type string `json:"type"`
					UID  string `json:"uid"`
				} `json:"datasource"`
				Targets []struct {
					Expr       string `json:"expr"`
					Datasource struct {
						UID string `json:"uid"`
					} `json:"datasource"`
				} `json:"targets"`
			} `json:"panels"`
		}
		require.NoError(t, json.Unmarshal(raw, &d), f)
		assert.NotEmpty(t, d.UID, f)
		require.NotEmpty(t, d.Templating.List, f)
		dsVar := d.Templating.List[0]
		assert.Equal(t, "datasource", dsVar.Name, f)
		assert.Equal(t, "datasource", dsVar.Type, f)
		assert.JSONEq(t, `"prometheus"`, string(dsVar.Query), f)
		ids := map[int]bool{}
		for _, p := range d.Panels {
			assert.False(t, ids[p.ID], "%s: duplicate panel id %d", f, p.ID)
			ids[p.ID] = true
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			assert.Equal(t, "prometheus", p.Datasource.Type, "%s %s", f, p.Title)
			assert.Equal(t, "${datasource}", p.Datasource.UID, "%s %s", f, p.Title)
			require.NotEmpty(t, p.Targets, "%s %s", f, p.Title)
			for _, tg := range p.Targets {
				assert.NotEmpty(t, tg.Expr, "%s %s", f, p.Title)
				assert.Equal(t, "${datasource}", tg.Datasource.UID, "%s %s", f, p.Title)
			}
		}
	}
}

func TestSubstitute(t *testing.T) {
	got, err := Substitute(`rate(x{a=~"$a", b="${b}", c=~"${c:regex}", d="[[d]]"}[$__rate_interval])`,
		map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"})
	require.NoError(t, err)
	assert.Equal(t, `rate(x{a=~"1", b="2", c=~"3", d="4"}[1m])`, got)

	_, err = Substitute(`up{node="$node", site="$site"}`, map[string]string{"site": "x"})
	require.ErrorContains(t, err, "no value for Grafana variable(s) node")
}

func TestDashboardQueriesRejectsBadInput(t *testing.T) {
	_, err := DashboardQueries(t.TempDir())
	require.ErrorContains(t, err, "no dashboards")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"panels": [`), 0o644))
	_, err = DashboardQueries(dir)
	require.ErrorContains(t, err, "bad.json")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.json"),
		[]byte(`{"templating": {"list": [{"name": "v", "type": "query", "query": 7}]}}`), 0o644))
	_, err = DashboardQueries(dir)
	require.ErrorContains(t, err, "variable v")
}

func TestVariableExpr(t *testing.T) {
	assert.Equal(t, `up{job="kubeedge"}`, variableExpr(`label_values(up{job="kubeedge"}, site)`))
	assert.Equal(t, `topk(3, up)`, variableExpr(`query_result(topk(3, up))`))
	assert.Empty(t, variableExpr(`label_values(site)`))
	assert.Empty(t, variableExpr(`label_names()`))
}

// cloudcoreMetrics are the names the dashboards' cloudcore row reads from cloudcore itself.
var cloudcoreMetrics = []string{"KubeEdge_CloudHub_connected_nodes", "process_cpu_seconds_total", "process_resident_memory_bytes"}

// emittedMetrics is every metric name some part of the pipeline produces: each component's
// metadata.yaml (its own telemetry under telemetry.metrics, the series it emits into the pipeline
// under metrics), and every series name in the kubelet captures, which the receiver passes on as
// scraped.
func emittedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root, err := repo.Root()
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(root, "*", "*", "metadata.yaml"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 4, "the components' metadata.yaml files")
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
		require.NoError(t, yaml.Unmarshal(raw, &md), f)
		for name := range md.Metrics {
			out[name] = true
		}
		for name := range md.Telemetry.Metrics {
			out[name] = true
		}
	}
	for _, name := range []string{captures.Cadvisor, captures.Resource, captures.Kubelet} {
		raw, err := captures.Read(name)
		require.NoError(t, err)
		for line := range strings.SplitSeq(string(raw), "\n") {
			if line == "" || line[0] == '#' {
				continue
			}
			out[line[:strings.IndexAny(line+" ", "{ ")]] = true
		}
	}
	// cloudcore's own metrics, scraped by the chart as job cloudcore (collector.cloudcoreMetrics):
	// the one it registers (cloud/pkg/common/monitor) and the Go client's process collector.
	for _, name := range cloudcoreMetrics {
		out[name] = true
	}
	return out
}

// unemitted returns the metric names the expressions select that are not in emitted.
func unemitted(exprs map[DashboardQuery]parser.Expr, emitted map[string]bool) []string {
	var out []string
	for q, expr := range exprs {
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && !emitted[vs.Name] {
				out = append(out, fmt.Sprintf("%s %s: %s", q.File, q.Where, vs.Name))
			}
			return nil
		})
	}
	slices.Sort(out)
	return out
}

// TestDashboardMetricsAreEmitted fails when a dashboard names a metric that no component lists in
// its metadata.yaml and no kubelet serves, as a renamed self-telemetry metric would.
func TestDashboardMetricsAreEmitted(t *testing.T) {
	emitted := emittedMetrics(t)
	assert.Empty(t, unemitted(parsedDashboardQueries(t), emitted))

	old, err := parser.NewParser(parser.Options{}).ParseExpr(`sum(rate(edgeremotewrite_samples_dropped_total[5m])) / sum(up)`)
	require.NoError(t, err)
	assert.Equal(t, []string{"x.json p / A: edgeremotewrite_samples_dropped_total"},
		unemitted(map[DashboardQuery]parser.Expr{{File: "x.json", Where: "p / A"}: old}, emitted))
}

// TestDashboardsSelectCluster checks that every dashboard has a cluster variable and that every
// selector of every expression (panels and variables alike) is restricted by it.
func TestDashboardsSelectCluster(t *testing.T) {
	qs, err := DashboardQueries(dashboardDir)
	require.NoError(t, err)
	files := map[string]bool{}
	for _, q := range qs {
		if q.Where == "variable cluster" {
			files[q.File] = true
			continue
		}
		vars := maps.Clone(testDashboardVars)
		vars["cluster"] = "the-cluster"
		s, err := Substitute(q.Expr, vars)
		require.NoError(t, err)
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(s)
		require.NoError(t, err)
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				assert.True(t, slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
					return m.Name == "cluster" && m.Value == "the-cluster"
				}), "%s %s: %s has no cluster=~\"$cluster\"", q.File, q.Where, vs)
			}
			return nil
		})
	}
	dashboards, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	require.NoError(t, err)
	for _, d := range dashboards {
		assert.True(t, files[filepath.Base(d)], "%s has no cluster variable", d)
	}
}
