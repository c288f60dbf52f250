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
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/edgetel/edgetel/internal/testprog"
)

// rulesFile is the one source of the alerting rules: the chart renders it as a PrometheusRule and
// a ConfigMap, and it is loaded as it is by Prometheus or Thanos Ruler.
const rulesFile = "charts/edgetel/files/edgetel-alerts.yaml"

// rulesTest is its promtool unit test file.
const rulesTest = "internal/charttest/testdata/edgetel-alerts_test.yaml"

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

// TestPrometheusRuleIsTheRulesFile checks that the PrometheusRule and the ConfigMap the chart
// renders carry the rules file unchanged.
func TestPrometheusRuleIsTheRulesFile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), rulesFile))
	require.NoError(t, err)
	var want struct {
		Groups []map[string]any `json:"groups"`
	}
	require.NoError(t, sigsyaml.Unmarshal(raw, &want))

	objs := rendered(t, ciValues(t, "monitoring-values.yaml")...)
	pr := find[*PrometheusRule](t, objs, "PrometheusRule", "edgetel-alerts")
	assert.Equal(t, want.Groups, pr.Spec.Groups)
	assert.Equal(t, "kube-prometheus-stack", pr.Metadata["labels"].(map[string]any)["release"])
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-alerts")
	assert.Equal(t, strings.TrimSpace(string(raw)), strings.TrimSpace(cm.Data["edgetel-alerts.yaml"]))

	objs = rendered(t)
	assert.False(t, slices.ContainsFunc(objs, func(o Object) bool { return o.GVK.Kind == "PrometheusRule" }),
		"no PrometheusRule unless asked: the CRD may not exist")
}
