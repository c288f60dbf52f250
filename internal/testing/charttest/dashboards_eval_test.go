package charttest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fleetSeries is what the receiver emits for three nodes of site s1: edge-1 healthy; edge-2 connected
// but its cadvisor endpoint failing; edge-3 not Ready and no endpoint answering. Two collector
// shards scrape one cloudcore replica that counts two connected nodes.
const fleetSeries = `
load 30s
	kubeedge_node_connected{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-1"} 1x10
	kubeedge_node_connected{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-2"} 1x10
	kubeedge_node_connected{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-3"} 0x10
	kubeedge_node_ready{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-1"} 1x10
	kubeedge_node_ready{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-2"} 1x10
	kubeedge_node_ready{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-3"} 0x10
	up{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-1", metrics_path="/metrics/resource"} 1x10
	up{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-1", metrics_path="/metrics/cadvisor"} 1x10
	up{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-2", metrics_path="/metrics/resource"} 1x10
	up{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-2", metrics_path="/metrics/cadvisor"} 0x10
	up{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-3", metrics_path="/metrics/resource"} 0x10
	up{cluster="c", job="kubeedge", region="r1", site="s1", node_group="g", node="edge-3", metrics_path="/metrics/cadvisor"} 0x10
	KubeEdge_CloudHub_connected_nodes{cluster="c", job="cloudcore", instance="cloudcore-0:9091", shard="0"} 2x10
	KubeEdge_CloudHub_connected_nodes{cluster="c", job="cloudcore", instance="cloudcore-0:9091", shard="1"} 2x10
	up{cluster="c", job="cloudcore", instance="cloudcore-0:9091", shard="0"} 1x10
	up{cluster="c", job="cloudcore", instance="cloudcore-0:9091", shard="1"} 1x10
`

// TestFleetOverviewAnswersPerNode runs the fleet overview's health table, site table and
// cloudcore stats in Prometheus' engine over receiver-shaped series.
func TestFleetOverviewAnswersPerNode(t *testing.T) {
	st := promqltest.LoadedStorage(t, fleetSeries)
	eng := promqltest.NewTestEngine(t, false, 5*time.Minute, 1e6)
	at := time.Unix(0, 0).Add(4 * time.Minute)
	vars := strings.NewReplacer(`"$cluster"`, `".*"`, `"$region"`, `".*"`, `"$site"`, `".*"`, `"$node_group"`, `".*"`)
	eval := func(expr string) map[string]float64 {
		q, err := eng.NewInstantQuery(context.Background(), st, nil, grafanaVars.Replace(vars.Replace(expr)), at)
		require.NoError(t, err, expr)
		res := q.Exec(context.Background())
		require.NoError(t, res.Err, expr)
		v, err := res.Vector()
		require.NoError(t, err, expr)
		out := map[string]float64{}
		for _, s := range v {
			out[s.Metric.Get("node")+s.Metric.Get("site")] = s.F
		}
		return out
	}
	d := readDashboards(t)["edge-fleet-overview.json"]
	h := panelNamed(t, d, "Edge node health").Targets
	assert.Equal(t, map[string]float64{"edge-1s1": 1, "edge-2s1": 1, "edge-3s1": 0}, eval(h[0].Expr), "tunnel")
	assert.Equal(t, map[string]float64{"edge-1s1": 1, "edge-2s1": 1, "edge-3s1": 0}, eval(h[1].Expr), "Ready")
	assert.Equal(t, map[string]float64{"edge-1s1": 1, "edge-2s1": 1, "edge-3s1": 0}, eval(h[2].Expr), "/metrics/resource")
	assert.Equal(t, map[string]float64{"edge-1s1": 1, "edge-2s1": 0, "edge-3s1": 0}, eval(h[3].Expr), "/metrics/cadvisor")
	assert.Empty(t, eval(h[4].Expr), "/metrics is not scraped: no row value, shown as -")

	s := panelNamed(t, d, "Sites: nodes connected").Targets
	assert.Equal(t, map[string]float64{"s1": 2}, eval(s[0].Expr), "connected")
	assert.Equal(t, map[string]float64{"s1": 3}, eval(s[1].Expr), "known")

	one := func(title string) float64 {
		got := eval(panelNamed(t, d, title).Targets[0].Expr)
		require.Len(t, got, 1, title)
		for _, v := range got {
			return v
		}
		return 0
	}
	assert.Equal(t, 2.0, one("Edge nodes connected to cloudcore"), "two shards scraping one replica count once")
	assert.Equal(t, 1.0, one("cloudcore replicas answering"))
	assert.Equal(t, 0.0, one("Connected per cloudcore vs per edgetel"))
}
