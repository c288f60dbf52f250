package charttest

// Tests of what an operator meets on the first day (issue #22): the CA Secret check, memory and
// start-up settings, disruption budgets, self-monitoring, ServiceMonitors, the Grafana data
// source, `helm test`, NOTES and the chart as a subchart.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"
)

// rendered renders the chart with extra helm arguments and decodes it.
func rendered(t *testing.T, extra ...string) []Object {
	t.Helper()
	out, err := Render(t, extra...)
	require.NoError(t, err)
	objs, err := DecodeAll(out)
	require.NoError(t, err)
	return objs
}

func ciValues(t *testing.T, name string) []string {
	return []string{"-f", filepath.Join(ChartDir(t), "ci", name)}
}

// find returns the object of kind and name, failing the test when there is none.
func find[T any](t *testing.T, objs []Object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.GVK.Kind == kind && o.Name == name {
			if v, ok := o.Obj.(T); ok {
				return v
			}
			if v, ok := o.External.(T); ok {
				return v
			}
		}
	}
	var zero T
	t.Fatalf("%s/%s is not rendered", kind, name)
	return zero
}

func has(objs []Object, kind, name string) bool {
	for _, o := range objs {
		if o.GVK.Kind == kind && o.Name == name {
			return true
		}
	}
	return false
}

func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(append([]corev1.Container{}, pod.InitContainers...), pod.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func volume(t *testing.T, pod corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s", name)
	return corev1.Volume{}
}

// collectorConfig is the rendered collector configuration (of release "edgetel" unless a name is given).
func collectorConfig(t *testing.T, objs []Object, name ...string) map[string]any {
	t.Helper()
	cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", append(name, "edgetel-collector")[0])
	var cfg map[string]any
	require.NoError(t, sigsyaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg))
	return cfg
}

func dig(t *testing.T, m map[string]any, path ...string) any {
	t.Helper()
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		require.True(t, ok, "%s: not a map at %s", strings.Join(path, "."), p)
		v, ok = mm[p]
		require.True(t, ok, "%s: no %s", strings.Join(path, "."), p)
	}
	return v
}

func TestCollectorScrapesItsOwnTelemetry(t *testing.T) {
	cfg := collectorConfig(t, rendered(t))
	scrape := dig(t, cfg, "receivers", "prometheus/self", "config", "scrape_configs").([]any)
	require.Len(t, scrape, 1)
	job := scrape[0].(map[string]any)
	assert.Equal(t, "edgetelcol", job["job_name"], "the job the alerts and dashboards expect")
	assert.Equal(t, "30s", job["scrape_interval"])
	assert.Equal(t, []any{map[string]any{"targets": []any{"${env:POD_IP}:8888"}}}, job["static_configs"])
	// The telemetry endpoint scraped is the one the collector serves.
	reader := dig(t, cfg, "service", "telemetry", "metrics", "readers").([]any)[0].(map[string]any)
	assert.Equal(t, map[string]any{"host": "${env:POD_IP}", "port": float64(8888)}, dig(t, reader, "pull", "exporter", "prometheus"))
	assert.Equal(t, []any{"kubeedge", "prometheus/self"}, dig(t, cfg, "service", "pipelines", "metrics", "receivers"))

	off := collectorConfig(t, rendered(t, "--set", "collector.selfMonitoring.enabled=false"))
	assert.NotContains(t, dig(t, off, "receivers"), "prometheus/self")
	assert.Equal(t, []any{"kubeedge"}, dig(t, off, "service", "pipelines", "metrics", "receivers"))
}

func TestCollectorPipelineHasTheCardinalityGuard(t *testing.T) {
	cfg := collectorConfig(t, rendered(t))
	assert.Equal(t, []any{"memory_limiter", "edgenode"}, dig(t, cfg, "service", "pipelines", "metrics", "processors"))
	assert.Equal(t, map[string]any{"enabled": true, "max_series_per_node": float64(10000), "max_series_per_metric": float64(2000), "window": "15m"},
		dig(t, cfg, "processors", "edgenode", "cardinality_guard"))
	// Only the guard: no attribute the receiver's series labels already carry.
	assert.Equal(t, map[string]any{"node_name": "", "node_group": "", "ready": "", "labels": []any{}},
		dig(t, cfg, "processors", "edgenode", "attributes"))

	cfg = collectorConfig(t, rendered(t, ciValues(t, "apiserver-values.yaml")...))
	assert.Equal(t, float64(20000), dig(t, cfg, "processors", "edgenode", "cardinality_guard", "max_series_per_node"))
	cfg = collectorConfig(t, rendered(t, ciValues(t, "minimal-values.yaml")...))
	assert.Equal(t, []any{"memory_limiter"}, dig(t, cfg, "service", "pipelines", "metrics", "processors"))
}

// The receiver carries node, metrics_path and the nodeLabels on each endpoint's resource; every
// exporter the chart generates turns those resource attributes into labels. The deprecated
// targetLabelsOn is accepted, ignored, and NOTES.txt warns about it.
func TestTargetLabelsOnTheResource(t *testing.T) {
	cfg := collectorConfig(t, rendered(t, "--set", "collector.remoteWrite.enabled=true",
		"--set", "collector.remoteWrite.endpoint=http://receive:19291/api/v1/receive"))
	attrs := dig(t, cfg, "receivers", "kubeedge", "attributes").(map[string]any)
	assert.NotContains(t, attrs, "target_labels_on")
	want := map[string]any{"included": []any{"node", "metrics_path", "node_group", "region", "site"}}
	for _, exp := range []string{"objstore", "edgeremotewrite"} {
		assert.Equal(t, want, dig(t, cfg, "exporters", exp, "resource_constant_labels"), exp)
	}
	cfg = collectorConfig(t, rendered(t, "--set", "collector.nodeLabels.node_group=null"))
	assert.Equal(t, []any{"node", "metrics_path", "region", "site"}, dig(t, cfg, "exporters", "objstore", "resource_constant_labels", "included"))

	out, err := Render(t, "--set", "collector.targetLabelsOn=data_points")
	require.NoError(t, err)
	assert.NotContains(t, string(out), "target_labels_on")
	assert.Contains(t, renderNotes(t, "--set", "collector.targetLabelsOn=scope"), "collector.targetLabelsOn is deprecated and ignored")
	assert.NotContains(t, renderNotes(t), "targetLabelsOn")
}

// The memory_limiter's soft limit sits above GOMEMLIMIT: below it, the heap that GOMEMLIMIT lets
// grow between collections would make it refuse data the collector has room for.
func TestMemoryLimiterLeavesGOMEMLIMITRoom(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		limit, soft float64
	}{
		{nil, 95, 85},
		{ciValues(t, "apiserver-values.yaml"), 90, 80},
		{[]string{"--set", "collector.goMemLimitPercent=90"}, 98, 95},
	} {
		ml := dig(t, collectorConfig(t, rendered(t, tc.args...)), "processors", "memory_limiter").(map[string]any)
		assert.Equal(t, tc.limit, ml["limit_percentage"], tc.args)
		assert.Equal(t, tc.soft, tc.limit-ml["spike_limit_percentage"].(float64), tc.args)
	}
	// Above 90 the soft limit could not stay above GOMEMLIMIT.
	_, err := Render(t, "--set", "collector.goMemLimitPercent=92")
	require.ErrorContains(t, err, "goMemLimitPercent")
}

func TestGoMemLimitIsAShareOfTheLimit(t *testing.T) {
	for name, tc := range map[string]struct {
		args      []string
		collector string // "" = no GOMEMLIMIT
		query     string
	}{
		"default values (4Gi and 4Gi, 80%)": {nil, "3435973836", "3435973836"},
		"decimal units, 75%":                {ciValues(t, "apiserver-values.yaml"), "1152000000", ""},
		"no memory limit":                   {ciValues(t, "minimal-values.yaml"), "", ""},
		"fractional limit":                  {[]string{"--set", "collector.resources.limits.memory=1.5Gi", "--set", "query.enabled=false"}, "1288490188", ""},
	} {
		t.Run(name, func(t *testing.T) {
			objs := rendered(t, tc.args...)
			sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
			v, ok := env(container(t, sts.Spec.Template.Spec, "collector"), "GOMEMLIMIT")
			assert.Equal(t, tc.collector != "", ok)
			assert.Equal(t, tc.collector, v)
			if tc.query != "" {
				d := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query")
				v, _ := env(container(t, d.Spec.Template.Spec, "query"), "GOMEMLIMIT")
				assert.Equal(t, tc.query, v)
			}
		})
	}
	_, err := Render(t, "--set", "collector.resources.limits.memory=2GB")
	require.ErrorContains(t, err, `resources.limits.memory "2GB"`)
}

// The collector no longer replays its WAL before it is healthy (the objstore exporter writes a
// previous head out in the background), so the startup probe needs a minute, not the 15 it
// allowed for the replay: a pod that does not start is restarted soon.
func TestCollectorStartupProbeIsShort(t *testing.T) {
	sts := find[*appsv1.StatefulSet](t, rendered(t), "StatefulSet", "edgetel-collector")
	c := container(t, sts.Spec.Template.Spec, "collector")
	require.NotNil(t, c.StartupProbe, "the startup probe holds liveness off while the collector starts")
	assert.Equal(t, "health", c.StartupProbe.HTTPGet.Port.String())
	budget := c.StartupProbe.PeriodSeconds * c.StartupProbe.FailureThreshold
	assert.GreaterOrEqual(t, budget, int32(30))
	assert.LessOrEqual(t, budget, int32(120))
	assert.Zero(t, c.LivenessProbe.InitialDelaySeconds, "the startup probe holds liveness off")
}

// TestMissingCloudcoreCASaysWhatToDo runs the rendered init container's script with sh: with no CA
// file it fails, naming the Secret and the one command that creates it from streamCA.crt alone.
func TestMissingCloudcoreCASaysWhatToDo(t *testing.T) {
	sts := find[*appsv1.StatefulSet](t, rendered(t), "StatefulSet", "edgetel-collector")
	pod := sts.Spec.Template.Spec
	check := container(t, pod, "check-cloudcore-ca")
	ca := volume(t, pod, "cloudcore-ca")
	require.NotNil(t, ca.Secret.Optional)
	assert.True(t, *ca.Secret.Optional, "an optional volume lets the check run instead of ContainerCreating")
	require.Equal(t, []string{"sh", "-c"}, check.Command)
	require.Len(t, check.Args, 1)
	require.Contains(t, check.Args[0], "/etc/edgetel/cloudcore/ca.crt")

	dir := t.TempDir()
	script := strings.ReplaceAll(check.Args[0], "/etc/edgetel/cloudcore/ca.crt", filepath.Join(dir, "ca.crt"))
	script = strings.ReplaceAll(script, "/dev/termination-log", filepath.Join(dir, "termination-log"))
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, 1, exit.ExitCode())
	const create = `kubectl -n edgetel create secret generic cloudcore --from-file=streamCA.crt=<(kubectl -n kubeedge get secret cloudcore -o jsonpath='{.data.streamCA\.crt}' | base64 -d)`
	for _, want := range []string{"The file streamCA.crt of Secret cloudcore is missing.", "in namespace edgetel", create} {
		assert.Contains(t, string(out), want)
	}
	term, err := os.ReadFile(filepath.Join(dir, "termination-log"))
	require.NoError(t, err)
	assert.Contains(t, string(term), create, "kubectl describe pod shows the termination message")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("-----BEGIN CERTIFICATE-----\n"), 0o600))
	out, err = exec.Command("sh", "-c", script).CombinedOutput()
	assert.NoError(t, err, "%s", out)

	// The NOTES give the same command, and no longer copy cloudcore's whole Secret.
	notes := renderNotes(t)
	assert.Contains(t, string(notes), create)
	assert.NotContains(t, string(notes), "get secret cloudcore -o yaml")

	// Without the check image, the volume is required again (the pod waits for the Secret).
	sts = find[*appsv1.StatefulSet](t, rendered(t, "--set", "collector.cloudcore.caSecret.checkImage.repository="), "StatefulSet", "edgetel-collector")
	assert.Empty(t, sts.Spec.Template.Spec.InitContainers)
	assert.Nil(t, volume(t, sts.Spec.Template.Spec, "cloudcore-ca").Secret.Optional)
}

// renderNotes renders templates/NOTES.txt as `helm install` would print it. `helm template` leaves
// NOTES out and `helm install --dry-run` needs a cluster, so a copy of the chart (without its
// symlinked dashboards) renders the same template text into a ConfigMap. extra are helm flags.
func renderNotes(t *testing.T, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "edgetel")
	src := ChartDir(t)
	require.NoError(t, filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink != 0 {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	}))
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir, "templates", "NOTES.txt")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "_notes.tpl"),
		[]byte(`{{- define "test.notes" -}}`+string(notes)+`{{- end }}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "notes.yaml"), []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: notes}
data:
  notes: {{ include "test.notes" . | quote }}
`), 0o644))
	args := append([]string{"template", "edgetel", dir, "--namespace", "edgetel", "--kube-version", KubeVersion, "--show-only", "templates/notes.yaml"}, extra...)
	out, err := RunHelm(Helm(t), args...)
	require.NoError(t, err)
	var cm corev1.ConfigMap
	require.NoError(t, sigsyaml.Unmarshal(out, &cm))
	require.NotEmpty(t, cm.Data["notes"])
	return cm.Data["notes"]
}

func TestNotesHintsWork(t *testing.T) {
	notes := renderNotes(t)
	// Telemetry listens on the pod IP: a port-forward (to the pod's loopback) cannot reach it, the
	// API server's pod proxy (to the pod IP) can.
	assert.NotContains(t, string(notes), "port-forward statefulset/edgetel-collector")
	assert.Contains(t, string(notes), "kubectl get --raw /api/v1/namespaces/edgetel/pods/edgetel-collector-0:8888/proxy/metrics")
	assert.Contains(t, string(notes), "helm test edgetel -n edgetel")
}

// TestMultiReplicaWorkloadsHaveDisruptionBudgets checks, for every rendering, that each Deployment
// or StatefulSet with more than one replica has a PodDisruptionBudget selecting its pods.
func TestMultiReplicaWorkloadsHaveDisruptionBudgets(t *testing.T) {
	for name, args := range renderings(t) {
		t.Run(name, func(t *testing.T) {
			objs := rendered(t, args...)
			var pdbs []*policyv1.PodDisruptionBudget
			for _, o := range objs {
				if p, ok := o.Obj.(*policyv1.PodDisruptionBudget); ok {
					pdbs = append(pdbs, p)
				}
			}
			for _, o := range objs {
				var replicas *int32
				var pod map[string]string
				switch v := o.Obj.(type) {
				case *appsv1.Deployment:
					replicas, pod = v.Spec.Replicas, v.Spec.Template.Labels
				case *appsv1.StatefulSet:
					replicas, pod = v.Spec.Replicas, v.Spec.Template.Labels
				default:
					continue
				}
				if replicas == nil || *replicas < 2 {
					continue
				}
				covered := false
				for _, p := range pdbs {
					sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
					require.NoError(t, err)
					covered = covered || sel.Matches(labels.Set(pod))
				}
				assert.True(t, covered, "%s/%s has %d replicas and no PodDisruptionBudget", o.GVK.Kind, o.Name, *replicas)
			}
		})
	}
}

func TestQueryCachePerReplica(t *testing.T) {
	objs := rendered(t, ciValues(t, "monitoring-values.yaml")...)
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-query")
	assert.Equal(t, int32(2), *sts.Spec.Replicas)
	require.Len(t, sts.Spec.VolumeClaimTemplates, 1, "one claim per replica")
	assert.Equal(t, "cache", sts.Spec.VolumeClaimTemplates[0].Name)
	for _, o := range objs {
		assert.NotEqual(t, "PersistentVolumeClaim", o.GVK.Kind, "no claim shared by the replicas: %s", o.Name)
	}
	assert.True(t, has(objs, "PodDisruptionBudget", "edgetel-query"))
	assert.False(t, has(objs, "Deployment", "edgetel-query"))

	// Without persistence: a Deployment with an emptyDir, and no budget for one replica.
	objs = rendered(t)
	d := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query")
	assert.NotNil(t, volume(t, d.Spec.Template.Spec, "cache").EmptyDir)
	assert.False(t, has(objs, "PodDisruptionBudget", "edgetel-query"))
}

// TestServiceMonitorsSelectTheirServices checks that each ServiceMonitor selects a rendered Service
// in the release namespace that has the port it scrapes, and that the collector's is job
// "edgetelcol", as the alerts expect.
func TestServiceMonitorsSelectTheirServices(t *testing.T) {
	objs := rendered(t, ciValues(t, "monitoring-values.yaml")...)
	var monitors []string
	for _, o := range objs {
		sm, ok := o.External.(*ServiceMonitor)
		if !ok {
			continue
		}
		monitors = append(monitors, o.Name)
		assert.Equal(t, []string{"edgetel"}, sm.Spec.NamespaceSelector.MatchNames, o.Name)
		assert.Equal(t, "kube-prometheus-stack", sm.Metadata["labels"].(map[string]any)["release"], o.Name)
		var matched []string
		for _, so := range objs {
			svc, ok := so.Obj.(*corev1.Service)
			if !ok || !labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(svc.Labels)) {
				continue
			}
			matched = append(matched, svc.Name)
			for _, ep := range sm.Spec.Endpoints {
				assert.True(t, hasPort(svc, ep.Port), "%s: Service %s has no port %s", o.Name, svc.Name, ep.Port)
			}
			if sm.Spec.JobLabel != "" {
				assert.Equal(t, "edgetelcol", svc.Labels[sm.Spec.JobLabel], o.Name)
			}
		}
		assert.Len(t, matched, 1, "%s selects %v", o.Name, matched)
	}
	assert.ElementsMatch(t, []string{"edgetel-collector", "edgetel-query", "edgetel-onboard-controller"}, monitors)
	assert.Equal(t, "edgetel.io/job", find[*ServiceMonitor](t, objs, "ServiceMonitor", "edgetel-collector").Spec.JobLabel)
}

func hasPort(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func TestGrafanaDatasource(t *testing.T) {
	type datasources struct {
		Datasources []struct {
			Name, UID, Type, URL string
			JSONData             map[string]any `json:"jsonData"`
		} `json:"datasources"`
	}
	read := func(t *testing.T, objs []Object) datasources {
		cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-datasource")
		assert.Equal(t, "1", cm.Labels["grafana_datasource"], "the label Grafana's sidecar looks for")
		var ds datasources
		require.NoError(t, sigsyaml.Unmarshal([]byte(cm.Data["edgetel-datasource.yaml"]), &ds))
		require.Len(t, ds.Datasources, 1)
		return ds
	}
	ds := read(t, rendered(t)).Datasources[0]
	assert.Equal(t, "prometheus", ds.Type)
	assert.Equal(t, "http://edgetel-query.edgetel.svc:9090", ds.URL)
	assert.Equal(t, "30s", ds.JSONData["timeInterval"], "the scrape interval")

	ds = read(t, rendered(t, ciValues(t, "apiserver-values.yaml")...)).Datasources[0]
	assert.Equal(t, "http://thanos-query.monitoring.svc:9090", ds.URL)
	assert.Equal(t, "60s", ds.JSONData["timeInterval"])

	assert.False(t, has(rendered(t, ciValues(t, "minimal-values.yaml")...), "ConfigMap", "edgetel-datasource"))
}

// TestDashboardsOpenOnEdgetel checks that every dashboard's datasource variable starts at
// edgetel's data source by uid, and that rendering beside kube-prometheus-stack (whose Prometheus
// data source is Grafana's default) adds no second default data source.
func TestDashboardsOpenOnEdgetel(t *testing.T) {
	current := func(t *testing.T, objs []Object) map[string]string {
		out := map[string]string{}
		for _, o := range objs {
			cm, ok := o.Obj.(*corev1.ConfigMap)
			if !ok || cm.Labels["grafana_dashboard"] != "1" {
				continue
			}
			for file, raw := range cm.Data {
				var d struct {
					Templating struct {
						List []struct {
							Type    string `json:"type"`
							Current struct {
								Value string `json:"value"`
							} `json:"current"`
						} `json:"list"`
					} `json:"templating"`
				}
				require.NoError(t, json.Unmarshal([]byte(raw), &d), file)
				for _, v := range d.Templating.List {
					if v.Type == "datasource" {
						out[file] = v.Current.Value
					}
				}
			}
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		uid  string
	}{
		{ciValues(t, "monitoring-values.yaml"), "edgetel"},
		{[]string{"--set", "datasource.uid=edge-history"}, "edge-history"},
	} {
		objs := rendered(t, tc.args...)
		got := current(t, objs)
		require.Len(t, got, 3, "every dashboard has a datasource variable")
		for file, uid := range got {
			assert.Equal(t, tc.uid, uid, "%s starts at edgetel's data source", file)
		}
		cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-datasource")
		var ds struct {
			Datasources []struct {
				UID       string `json:"uid"`
				IsDefault bool   `json:"isDefault"`
			} `json:"datasources"`
		}
		require.NoError(t, sigsyaml.Unmarshal([]byte(cm.Data["edgetel-datasource.yaml"]), &ds))
		require.Len(t, ds.Datasources, 1)
		assert.Equal(t, tc.uid, ds.Datasources[0].UID)
		assert.False(t, ds.Datasources[0].IsDefault, "no second default beside kube-prometheus-stack's")
	}
}

func TestHelmTestQueriesCollectorAndQuery(t *testing.T) {
	pod := find[*corev1.Pod](t, rendered(t, ciValues(t, "monitoring-values.yaml")...), "Pod", "edgetel-test")
	assert.Equal(t, "test", pod.Annotations["helm.sh/hook"])
	script := container(t, pod.Spec, "test").Args[0]
	assert.Contains(t, script, "$(seq 0 2)", "every shard")
	assert.Contains(t, script, "http://edgetel-collector-$i.edgetel-collector-headless.edgetel.svc:13133/")
	assert.Contains(t, script, "http://edgetel-query.edgetel.svc:9090/api/v1/query?query=vector(1)")

	// The script's own logic with a wget that answers as a healthy install does, then as a broken query.
	dir := t.TempDir()
	wget := filepath.Join(dir, "wget")
	require.NoError(t, os.WriteFile(wget, []byte("#!/bin/sh\ncat \"$WGET_ANSWER\"\n"), 0o755))
	answer := filepath.Join(dir, "answer")
	run := func(body string) error {
		require.NoError(t, os.WriteFile(answer, []byte(body), 0o600))
		cmd := exec.Command("sh", "-ec", script)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "WGET_ANSWER="+answer)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	assert.NoError(t, run(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	assert.ErrorContains(t, run(`{"status":"error"}`), "edgetel-query did not answer the query")
}

// TestChartWorksAsSubchart installs the packaged chart as a dependency of another chart that sets
// `global`, as umbrella charts do: helm passes global into every subchart's values, which the
// schema must accept.
func TestChartWorksAsSubchart(t *testing.T) {
	helm := Helm(t)
	parent := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(parent, "charts"), 0o755))
	_, err := RunHelm(helm, "package", ChartDir(t), "--destination", filepath.Join(parent, "charts"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(parent, "Chart.yaml"), []byte(`apiVersion: v2
name: platform
version: 1.0.0
dependencies:
  - name: edgetel
    version: 0.1.0
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(parent, "values.yaml"), []byte(`global:
  imageRegistry: registry.example.com
  storageClass: fast
edgetel:
  clusterName: plant-9
`), 0o644))
	out, err := RunHelm(helm, "template", "platform", parent, "--namespace", "edgetel", "--kube-version", KubeVersion)
	require.NoError(t, err)
	objs, err := DecodeAll(out)
	require.NoError(t, err)
	assert.NoError(t, errors.Join(Check(objs)...))
	cfg := collectorConfig(t, objs, "platform-edgetel-collector")
	assert.Equal(t, "plant-9", dig(t, cfg, "exporters", "objstore", "external_labels", "cluster"))

	_, err = RunHelm(helm, "template", "platform", parent, "--kube-version", KubeVersion, "--set", "edgetel.colector.shards=2")
	require.ErrorContains(t, err, "schema", "the subchart's schema still rejects unknown keys")
}

// TestCollectorConfigIsValid runs `edgetelcol validate` (the real collector, from EDGETEL_BIN) on
// the collector configuration of every rendering, with the pod's files and variables supplied.
func TestCollectorConfigIsValid(t *testing.T) {
	bin := os.Getenv("EDGETEL_BIN")
	if bin == "" {
		t.Skip("EDGETEL_BIN is not set: run through `make test`, which builds edgetelcol into ./bin")
	}
	for name, args := range renderings(t) {
		t.Run(name, func(t *testing.T) {
			objs := rendered(t, args...)
			if !has(objs, "ConfigMap", "edgetel-collector") {
				t.Skip("no collector")
			}
			cm := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-collector")
			dir := t.TempDir()
			bucket := filepath.Join(dir, "objstore.yml")
			require.NoError(t, os.WriteFile(bucket, []byte("type: FILESYSTEM\nconfig: {directory: "+dir+"/bucket}\n"), 0o600))
			cfg := strings.ReplaceAll(cm.Data["config.yaml"], "/etc/edgetel/bucket/objstore.yml", bucket)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600))
			cmd := exec.Command(filepath.Join(bin, "edgetelcol"), "validate", "--config="+filepath.Join(dir, "config.yaml"))
			cmd.Env = append(os.Environ(), "POD_IP=127.0.0.1", "SHARD_INDEX=0")
			out, err := cmd.CombinedOutput()
			assert.NoError(t, err, "%s\n%s", out, cfg)
		})
	}
}
