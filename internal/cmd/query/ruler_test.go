package query

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeRules(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// The ruler reads what the API reads: edge-c is only in the collector's head, so the alert
// counting three nodes fires only because the rules see the heads as well as the bucket.
func TestRulerEvaluatesOverBucketAndHeads(t *testing.T) {
	headURL, bucketDir, _ := collectorHead(t)
	c := DefaultConfig()
	c.BucketDir = bucketDir
	c.Heads.Endpoints = []string{headURL}
	c.Rules.Files = []string{writeRules(t, `groups:
  - name: fleet
    interval: 200ms
    rules:
      - alert: ThreeNodesSeen
        expr: count by (cluster) (last_over_time(up[12h])) >= 3
        labels: {severity: info}
        annotations: {summary: '{{ $value }} nodes in cluster {{ $labels.cluster }}'}
      - alert: NeverFires
        expr: count(up) > 1000
`)}
	base := startQuery(t, c)

	var alerts struct {
		Data struct {
			Alerts []struct {
				Labels      map[string]string
				Annotations map[string]string
				State       string
			}
		}
	}
	require.Eventually(t, func() bool {
		code, body := get(t, base, "/api/v1/alerts", nil, false)
		require.Equal(t, 200, code, body)
		require.NoError(t, json.Unmarshal([]byte(body), &alerts))
		return len(alerts.Data.Alerts) == 1
	}, 30*time.Second, 100*time.Millisecond, "the alert fires")
	a := alerts.Data.Alerts[0]
	assert.Equal(t, "firing", a.State)
	assert.Equal(t, map[string]string{"alertname": "ThreeNodesSeen", "cluster": "e2e", "severity": "info"}, a.Labels)
	assert.Equal(t, "3 nodes in cluster e2e", a.Annotations["summary"])

	code, body := get(t, base, "/api/v1/rules", nil, false)
	require.Equal(t, 200, code, body)
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string
				Rules []struct {
					Name, State, Health, Type string
				}
			}
		}
	}
	require.NoError(t, json.Unmarshal([]byte(body), &rules))
	require.Len(t, rules.Data.Groups, 1, body)
	g := rules.Data.Groups[0]
	assert.Equal(t, "fleet", g.Name)
	require.Len(t, g.Rules, 2, body)
	assert.Equal(t, "firing", g.Rules[0].State)
	assert.Equal(t, "inactive", g.Rules[1].State)
	for _, r := range g.Rules {
		assert.Equal(t, "alerting", r.Type)
		assert.Equal(t, "ok", r.Health, body)
	}
	code, body = get(t, base, "/api/v1/alertmanagers", nil, false)
	assert.Equal(t, 200, code, body)
	assert.JSONEq(t, `{"status":"success","data":{"activeAlertmanagers":[],"droppedAlertmanagers":[]}}`, body)
}

func TestRunRejectsBadRules(t *testing.T) {
	good := writeRules(t, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n")
	cases := []struct {
		name string
		edit func(*RuleConfig)
		want string
	}{
		{"recording rule", func(r *RuleConfig) {
			r.Files = []string{writeRules(t, "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n")}
		}, `rule "job:up:sum": edgetel-query evaluates alerting rules only`},
		{"no file matches", func(r *RuleConfig) { r.Files = []string{filepath.Join(t.TempDir(), "*.yaml")} }, "matches no file"},
		{"bad expression", func(r *RuleConfig) {
			r.Files = []string{writeRules(t, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n")}
		}, "rule file"},
		{"bad alertmanager URL", func(r *RuleConfig) { r.Files = []string{good}; r.Alertmanagers = []string{"alertmanager:9093"} }, "alertmanager URL"},
		{"alertmanager without rules", func(r *RuleConfig) { r.Alertmanagers = []string{"http://127.0.0.1:9093"} }, "no rule file"},
		{"zero interval", func(r *RuleConfig) { r.Files = []string{good}; r.Interval = 0 }, "evaluation interval"},
		{"bad external URL", func(r *RuleConfig) { r.Files = []string{good}; r.ExternalURL = "edgetel-query" }, "external URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.BucketDir = t.TempDir()
			c.CacheDir = t.TempDir()
			c.Listen = "127.0.0.1:0"
			tc.edit(&c.Rules)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := Run(ctx, c, nil, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.False(t, errors.Is(err, context.DeadlineExceeded))
		})
	}
}
