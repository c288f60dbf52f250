package query

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const dashboardDir = "../../examples/dashboards"

// testDashboardVars select everything, and the flaky node for the node dashboard.
var testDashboardVars = map[string]string{"region": ".*", "site": ".*", "node_group": ".*", "node": "edge-4"}

// dashboardMetrics is every metric name the shipped dashboards query: the names the receiver,
// the exporters and the kubelet must produce.
var dashboardMetrics = []string{
	"container_cpu_usage_seconds_total",
	"container_memory_working_set_bytes",
	"edgeremotewrite_buffer_bytes",
	"edgeremotewrite_buffer_disk_bytes",
	"edgeremotewrite_oldest_sample_age_seconds",
	"edgeremotewrite_samples_dropped_total",
	"kubeedge_node_connected",
	"kubeedge_node_disconnects_total",
	"kubeedge_node_ready",
	"kubeedge_node_seconds_since_last_good_scrape",
	"kubeedge_scrape_failures_total",
	"node_cpu_usage_seconds_total",
	"node_memory_working_set_bytes",
	"otelcol_objstore_exporter_blocks_uploaded",
	"otelcol_objstore_exporter_samples_dropped",
	"otelcol_objstore_exporter_upload_failures",
	"otelcol_objstore_exporter_upload_lag",
	"otelcol_receiver_kubeedge_scrape_failures",
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
			if p.Type == "row" {
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
