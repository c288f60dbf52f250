package charttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// rulesFile is the one source of the alerting rules: the chart renders it as a PrometheusRule and
// a ConfigMap, and it is loaded as it is by Prometheus or Thanos Ruler.
const rulesFile = "charts/edgetel/files/edgetel-alerts.yaml"

// rulesTest is its promtool unit test file.
const rulesTest = "internal/testing/charttest/testdata/edgetel-alerts_test.yaml"

// Promtool returns the promtool binary the Makefile installed (EDGETEL_PROMTOOL); see
// testprog.Path.
func Promtool(t testing.TB) string {
	t.Helper()
	return testprog.Path(t, "EDGETEL_PROMTOOL", "tool-prometheus")
}

type ruleGroups struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// runbookBase is where every alert's runbook_url points, followed by the alert's section anchor.
const runbookBase = "https://github.com/edgetel/edgetel/blob/main/docs/runbooks.md#"

// TestEveryAlertHasARunbook checks that every alert links its own section of docs/runbooks.md,
// and that the section says where the alert is evaluated, what to check and what to do.
func TestEveryAlertHasARunbook(t *testing.T) {
	root := RepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, rulesFile))
	require.NoError(t, err)
	runbooks, err := os.ReadFile(filepath.Join(root, "docs", "runbooks.md"))
	require.NoError(t, err)
	sections := map[string]string{}
	for _, sec := range strings.Split(string(runbooks), "\n## ")[1:] {
		title, body, _ := strings.Cut(sec, "\n")
		sections[title] = body
	}
	var g ruleGroups
	require.NoError(t, sigsyaml.Unmarshal(raw, &g))
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			assert.Equal(t, runbookBase+strings.ToLower(r.Alert), r.Annotations["runbook_url"], r.Alert)
			body, ok := sections[r.Alert]
			if !assert.True(t, ok, "docs/runbooks.md has no section %q", r.Alert) {
				continue
			}
			for _, want := range []string{"Evaluated by:", "- Check:", "- Do:"} {
				assert.Contains(t, body, want, "runbook section %s", r.Alert)
			}
			assert.Contains(t, body, grp.Name, "runbook section %s names its group", r.Alert)
		}
	}
}

func alertNames(t *testing.T, raw []byte) []string {
	t.Helper()
	var g ruleGroups
	require.NoError(t, sigsyaml.Unmarshal(raw, &g))
	var names []string
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			names = append(names, r.Alert)
		}
	}
	return names
}

// TestAlertRules checks the rules with promtool and runs their unit tests, after checking that
// the tests have, for every alert, a case where it fires and a case where it stays quiet.
func TestAlertRules(t *testing.T) {
	root := RepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, rulesFile))
	require.NoError(t, err)
	alerts := alertNames(t, raw)
	require.GreaterOrEqual(t, len(alerts), 10)

	testRaw, err := os.ReadFile(filepath.Join(root, rulesTest))
	require.NoError(t, err)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	require.NoError(t, sigsyaml.Unmarshal(testRaw, &tests))
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			require.Contains(t, alerts, a.Alertname, "a test of an alert that does not exist")
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		assert.True(t, fires[a], "%s: no promtool case where it fires", a)
		assert.True(t, quiet[a], "%s: no promtool case where it stays quiet", a)
	}

	promtool := Promtool(t)
	out, err := exec.Command(promtool, "check", "rules", filepath.Join(root, rulesFile)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = exec.Command(promtool, "test", "rules", filepath.Join(root, rulesTest)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "SUCCESS")
}

// groupsOf reads a rule file's groups, keyed by name, as generic YAML.
func groupsOf(t *testing.T, raw string) map[string]map[string]any {
	t.Helper()
	var f struct {
		Groups []map[string]any `json:"groups"`
	}
	require.NoError(t, sigsyaml.Unmarshal([]byte(raw), &f))
	out := map[string]map[string]any{}
	for _, g := range f.Groups {
		out[g["name"].(string)] = g
	}
	return out
}

// TestRulesGoWhereTheirDataIs checks that each target gets the shipped groups evaluated where its
// data is, unchanged: the PrometheusRule the in-cluster group, edgetel-query's ruler (and the
// ConfigMap for Thanos Ruler) the bucket-side ones; and that edgetel-query loads the ruler's file.
func TestRulesGoWhereTheirDataIs(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), rulesFile))
	require.NoError(t, err)
	shipped := groupsOf(t, string(raw))
	require.Len(t, shipped, 3)

	objs := rendered(t, ciValues(t, "monitoring-values.yaml")...)
	pr := find[*PrometheusRule](t, objs, "PrometheusRule", "edgetel-alerts")
	assert.Equal(t, []map[string]any{shipped["edgetel-replicas"]}, pr.Spec.Groups)
	assert.Equal(t, "kube-prometheus-stack", pr.Metadata["labels"].(map[string]any)["release"])
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-alerts")
	bucketSide := map[string]map[string]any{"edgetel-pipeline": shipped["edgetel-pipeline"], "edgetel-fleet": shipped["edgetel-fleet"]}
	assert.Equal(t, bucketSide, groupsOf(t, cm.Data["edgetel-alerts.yaml"]))

	ruler := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-query-rules")
	assert.Equal(t, bucketSide, groupsOf(t, ruler.Data["edgetel-alerts.yaml"]))
	// The rendered file is a rule file promtool accepts.
	file := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(file, []byte(ruler.Data["edgetel-alerts.yaml"]), 0o600))
	out, err := exec.Command(Promtool(t), "check", "rules", file).CombinedOutput()
	require.NoError(t, err, "%s", out)

	objs = rendered(t, "--set-json", `alerts.ruler.alertmanagers=["http://am-0.am:9093","http://am-1.am:9093"]`)
	q := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query")
	c := container(t, q.Spec.Template.Spec, "query")
	assert.Contains(t, c.Args, "--rule-file=/etc/edgetel/rules/edgetel-alerts.yaml")
	assert.Contains(t, c.Args, "--alertmanager.url=http://am-0.am:9093")
	assert.Contains(t, c.Args, "--alertmanager.url=http://am-1.am:9093")
	assert.Contains(t, c.Args, "--rule.evaluation-interval=1m")
	assert.NotEmpty(t, q.Spec.Template.Annotations["checksum/rules"], "a change of the rules restarts the pods")
	assert.True(t, slices.ContainsFunc(q.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.ConfigMap != nil && strings.HasSuffix(v.ConfigMap.Name, "edgetel-query-rules")
	}))

	objs = rendered(t, "--set", "alerts.ruler.enabled=false")
	q = find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query")
	assert.False(t, slices.ContainsFunc(container(t, q.Spec.Template.Spec, "query").Args, func(a string) bool {
		return strings.HasPrefix(a, "--rule-file")
	}))
	assert.False(t, slices.ContainsFunc(objs, func(o Object) bool { return o.Name == "edgetel-query-rules" }))

	objs = rendered(t)
	assert.False(t, slices.ContainsFunc(objs, func(o Object) bool { return o.GVK.Kind == "PrometheusRule" }),
		"no PrometheusRule unless asked: the CRD may not exist")
}

// TestAlertValues checks alerts.disabled, alerts.overrides and alerts.additionalRules, and that
// a name that is no alert of the chart, or a threshold that is not a number, fails the render.
func TestAlertValues(t *testing.T) {
	objs := rendered(t,
		"--set", "alerts.disabled={EdgetelFleetConnectedShareLow,EdgetelRegionDisconnected}",
		"--set-json", `alerts.overrides={"EdgetelSiteDisconnected":{"for":"10m","threshold":0.3},"EdgetelEdgeNodeDisconnected":{"threshold":7200}}`,
		"--set-json", `alerts.additionalRules=[{"name":"mine","rules":[{"alert":"MyEdgeAppDown","expr":"up{job=\"my-app\"} == 0","for":"5m"}]}]`)
	ruler := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-query-rules")
	file := ruler.Data["edgetel-alerts.yaml"]
	names := alertNames(t, []byte(file))
	assert.NotContains(t, names, "EdgetelFleetConnectedShareLow")
	assert.NotContains(t, names, "EdgetelRegionDisconnected")
	assert.Contains(t, names, "MyEdgeAppDown")
	var g struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
				For   string `json:"for"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, sigsyaml.Unmarshal([]byte(file), &g))
	seen := 0
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			switch r.Alert {
			case "EdgetelSiteDisconnected":
				seen++
				assert.Equal(t, "10m", r.For)
				assert.Contains(t, r.Expr, "> 0.3")
				assert.NotContains(t, r.Expr, "> 0.5")
			case "EdgetelEdgeNodeDisconnected":
				seen++
				assert.Equal(t, "15m", r.For, "for unchanged")
				assert.Contains(t, r.Expr, "> 7200\n")
				assert.Contains(t, r.Expr, "> 0.5)", "only the first comparison is the threshold")
			}
		}
	}
	assert.Equal(t, 2, seen)
	p := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(p, []byte(file), 0o600))
	out, err := exec.Command(Promtool(t), "check", "rules", p).CombinedOutput()
	require.NoError(t, err, "%s", out)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "alerts.disabled={EdgetelSiteDown}"}, "alerts.disabled: EdgetelSiteDown is not an alert of the chart"},
		{[]string{"--set-json", `alerts.overrides={"EdgetelNope":{"for":"1m"}}`}, "alerts.overrides: EdgetelNope is not an alert of the chart"},
		{[]string{"--set-json", `alerts.overrides={"EdgetelSiteDisconnected":{"threshold":"half"}}`}, "threshold"},
		{[]string{"--set-json", `alerts.overrides={"EdgetelSiteDisconnected":{"for":"soon"}}`}, "for"},
		{[]string{"--set-json", `alerts.ruler.alertmanagers=["alertmanager:9093"]`}, "alertmanagers"},
	} {
		_, err := Render(t, tc.args...)
		require.Error(t, err, "%v", tc.args)
		assert.Contains(t, err.Error(), tc.want, "%v", tc.args)
	}
}

// TestThanosRulerLoadsTheBucketSideRules checks the Thanos example: Thanos Ruler loads the
// ConfigMap's bucket-side groups, queries the querier and sends to the Alertmanagers; without
// the ConfigMap it refuses to render.
func TestThanosRulerLoadsTheBucketSideRules(t *testing.T) {
	objs := rendered(t, "-f", filepath.Join(RepoRoot(t), "examples", "thanos", "values.yaml"))
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-thanos-ruler")
	c := container(t, sts.Spec.Template.Spec, "ruler")
	assert.Equal(t, "rule", c.Args[0])
	assert.Contains(t, c.Args, "--rule-file=/etc/thanos/rules/edgetel-alerts.yaml")
	assert.Contains(t, c.Args, "--alertmanagers.url=http://alertmanager-operated.monitoring.svc:9093")
	assert.True(t, slices.ContainsFunc(c.Args, func(a string) bool {
		return strings.HasPrefix(a, "--query=http://edgetel-thanos-query.")
	}), "%v", c.Args)
	assert.True(t, slices.ContainsFunc(sts.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool {
		return v.ConfigMap != nil && v.ConfigMap.Name == "edgetel-alerts"
	}))
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-alerts")
	groups := groupsOf(t, cm.Data["edgetel-alerts.yaml"])
	assert.Contains(t, groups, "edgetel-fleet")
	assert.NotContains(t, groups, "edgetel-replicas", "kube-state-metrics is not in the bucket")

	_, err := Render(t, "-f", filepath.Join(RepoRoot(t), "examples", "thanos", "values.yaml"), "--set", "alerts.configMap.enabled=false")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set alerts.configMap.enabled=true")
}
