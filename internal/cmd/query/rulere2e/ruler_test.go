// Package rulere2e runs edgesim → edgetelcol (objstore exporter, one-minute blocks, head_api on)
// → edgetel-query with the chart's shipped rules, sending to a real Alertmanager, and checks issue
// #36's promise: when edgesim disconnects every node of a site, the site-down alert reaches
// Alertmanager once for the site, not once per node, and it resolves when the nodes return.
//
// The binaries come from $EDGETEL_BIN (`make test` builds them into ./bin), else the test builds
// them; Alertmanager from $EDGETEL_ALERTMANAGER (`make tool-alertmanager`; skipped when unset).
package rulere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v2"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/internal/testing/repo"
	"github.com/edgetel/edgetel/internal/testing/testprog"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

const (
	interval  = 5 * time.Second
	nodes     = 40
	siteAlert = "EdgetelSiteDisconnected"
)

func start(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	logPath := filepath.Join(dir, name+".log")
	log, err := os.Create(logPath)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			_ = cmd.Wait()
			log.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				if len(out) > 3000 {
					out = out[len(out)-3000:]
				}
				t.Logf("%s log:\n%s", name, out)
			}
		})
	})
}

const collectorConfig = `receivers:
  kubeedge:
    collection_interval: %[1]s
    scrape_timeout: 4s
    job: kubeedge
    discovery:
      mode: file
      file: {path: %[2]s/fleet.json}
    transport:
      mode: cloudcore
      cloudcore:
        endpoints: ["%[3]s"]
        tls: {ca_file: %[2]s/tls/ca.crt}
    attributes:
      labels:
        - {key: topology.kubernetes.io/region, attribute: region}
        - {key: topology.kubernetes.io/zone, attribute: site}
exporters:
  objstore:
    directory: %[2]s/objstore
    external_labels: {cluster: e2e}
    block_duration: 1m
    upload_interval: 5s
    head_api:
      endpoint: %[4]s
extensions:
  health_check:
    endpoint: %[5]s
service:
  extensions: [health_check]
  telemetry:
    metrics: {level: none}
  pipelines:
    metrics:
      receivers: [kubeedge]
      exporters: [objstore]
`

// shippedRules writes the chart's rule groups that belong to edgetel-query's ruler, as the chart
// ships them but for the site alert's `for` (15s instead of minutes) and a short evaluation
// interval, so that the test takes a minute rather than ten.
func shippedRules(t *testing.T, dir string) string {
	t.Helper()
	root, err := repo.Root()
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(root, "charts", "edgetel", "files", "edgetel-alerts.yaml"))
	require.NoError(t, err)
	groups, errs := rulefmt.Parse(raw, false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil)
	require.Empty(t, errs)
	var out rulefmt.RuleGroups
	found := false
	for _, g := range groups.Groups {
		if g.Name == "edgetel-replicas" { // the in-cluster Prometheus' group
			continue
		}
		g.Interval = model.Duration(interval)
		for i := range g.Rules {
			if g.Rules[i].Alert == siteAlert {
				g.Rules[i].For = model.Duration(15 * time.Second)
				found = true
			}
		}
		out.Groups = append(out.Groups, g)
	}
	require.True(t, found, "the shipped rules have %s", siteAlert)
	b, err := yaml.Marshal(out)
	require.NoError(t, err)
	p := filepath.Join(dir, "rules.yaml")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

type amAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
}

// alerts lists the alerts Alertmanager holds (resolved ones leave the list).
func alerts(t *testing.T, am string) []amAlert {
	t.Helper()
	resp, err := http.Get(am + "/api/v2/alerts")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out []amAlert
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func named(as []amAlert, name string) []amAlert {
	var out []amAlert
	for _, a := range as {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

func admin(t *testing.T, base, path string) {
	t.Helper()
	resp, err := http.Post(base+path, "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, path)
}

func TestSiteDownAlertsOnceAndResolves(t *testing.T) {
	amBin := testprog.Path(t, "EDGETEL_ALERTMANAGER", "tool-alertmanager")
	bin := testprog.Commands(t, "edgesim", "edgetelcol", "edgetel-query")
	dir := t.TempDir()
	cloudcore, adminAddr, head, health, query, am := thanostest.FreeAddr(t), thanostest.FreeAddr(t),
		thanostest.FreeAddr(t), thanostest.FreeAddr(t), thanostest.FreeAddr(t), thanostest.FreeAddr(t)

	amConf := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(amConf, []byte("route:\n  receiver: none\n  group_by: [alertname, site]\nreceivers:\n  - name: none\n"), 0o600))
	start(t, dir, "alertmanager", amBin, "--config.file="+amConf, "--storage.path="+filepath.Join(dir, "am"),
		"--web.listen-address="+am, "--cluster.listen-address=")
	testprog.WaitOK(t, "alertmanager", "http://"+am+"/-/ready")

	start(t, dir, "edgesim", filepath.Join(bin, "edgesim"), fmt.Sprint("--nodes=", nodes), "--listen="+cloudcore,
		"--admin-listen="+adminAddr, "--fleet-file="+filepath.Join(dir, "fleet.json"), "--tls-dir="+filepath.Join(dir, "tls"),
		"--step="+interval.String(), "--log-stats=0")
	require.Eventually(t, func() bool {
		st, err := os.Stat(filepath.Join(dir, "fleet.json"))
		return err == nil && st.Size() > 0
	}, time.Minute, 100*time.Millisecond, "edgesim writes its fleet")
	f, err := fleet.Load(filepath.Join(dir, "fleet.json"))
	require.NoError(t, err)
	// The site with the most nodes: the alert must come once for all of them.
	perSite := map[string][]string{}
	for _, n := range f.Nodes {
		s := n.Labels[kube.LabelSite]
		perSite[s] = append(perSite[s], n.Name)
	}
	site := ""
	for s, ns := range perSite {
		if len(ns) > len(perSite[site]) || len(ns) == len(perSite[site]) && s < site {
			site = s
		}
	}
	require.GreaterOrEqual(t, len(perSite[site]), 2, "a site with several nodes")
	t.Logf("site %s: nodes %v", site, perSite[site])

	conf := filepath.Join(dir, "collector.yaml")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, collectorConfig, interval, dir, cloudcore, head, health), 0o600))
	start(t, dir, "edgetelcol", filepath.Join(bin, "edgetelcol"), "--config="+conf)
	testprog.WaitOK(t, "edgetelcol's head API", "http://"+head+"/-/ready")

	start(t, dir, "edgetel-query", filepath.Join(bin, "edgetel-query"), "--listen="+query,
		"--bucket-dir="+filepath.Join(dir, "objstore", "bucket"), "--cache-dir="+filepath.Join(dir, "query-cache"),
		"--sync-interval=5s", "--head.endpoint=http://"+head, "--rule-file="+shippedRules(t, dir),
		"--alertmanager.url=http://"+am, "--rules.alert.resend-delay=5s")
	testprog.WaitOK(t, "edgetel-query", "http://"+query+"/-/ready")

	// Every node connected, through the same data the rules read.
	require.Eventually(t, func() bool {
		a, err := thanostest.Query(t, "http://"+query, `count(max by (node) (kubeedge_node_connected{job="kubeedge"}) == 1)`, time.Now(), nil)
		return err == nil && len(a.Vector) == 1 && int(a.Vector[0].Value) == nodes
	}, 2*time.Minute, time.Second, "every node connected")
	require.Empty(t, named(alerts(t, "http://"+am), siteAlert), "no site is down yet")

	admin(t, "http://"+adminAddr, "/api/disconnect?"+url.Values{"site": {site}}.Encode())
	var got []amAlert
	require.Eventually(t, func() bool {
		got = named(alerts(t, "http://"+am), siteAlert)
		return len(got) > 0
	}, 2*time.Minute, time.Second, "the site-down alert reaches Alertmanager")
	// A few evaluations later it is still the one alert, for the site, with no node label.
	time.Sleep(3 * interval)
	all := alerts(t, "http://"+am)
	got = named(all, siteAlert)
	require.Len(t, got, 1, "one alert for the site, not one per node: %+v", all)
	require.Equal(t, site, got[0].Labels["site"])
	require.Equal(t, "e2e", got[0].Labels["cluster"])
	require.NotContains(t, got[0].Labels, "node")
	require.Equal(t, "active", got[0].Status.State)
	require.Empty(t, named(all, "EdgetelEdgeNodeDisconnected"), "no per-node page for the site's nodes")
	require.True(t, slices.ContainsFunc(all, func(a amAlert) bool { return a.Labels["site"] == site }))

	admin(t, "http://"+adminAddr, "/api/reconnect?"+url.Values{"site": {site}}.Encode())
	require.Eventually(t, func() bool {
		return len(named(alerts(t, "http://"+am), siteAlert)) == 0
	}, 2*time.Minute, time.Second, "the alert resolves when the nodes return")
}
