package charttest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// The keys named after the opentelemetry-collector chart's: ServiceMonitor relabelings,
// metricRelabelings and scrapeTimeout; priorityClassName and topologySpreadConstraints.
func TestCollectorChartParityKeys(t *testing.T) {
	spread := `[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway","labelSelector":{"matchLabels":{"app.kubernetes.io/name":"edgetel"}}}]`
	relabel := `[{"action":"replace","targetLabel":"team","replacement":"edge"}]`
	drop := `[{"action":"drop","sourceLabels":["__name__"],"regex":"go_gc_.*"}]`
	var args []string
	for _, c := range []string{"collector", "query"} {
		args = append(args,
			"--set", c+".serviceMonitor.enabled=true", "--set", c+".serviceMonitor.scrapeTimeout=20s",
			"--set-json", c+".serviceMonitor.relabelings="+relabel, "--set-json", c+".serviceMonitor.metricRelabelings="+drop,
			"--set", c+".priorityClassName=edge-critical", "--set-json", c+".topologySpreadConstraints="+spread)
	}
	objs := rendered(t, args...)
	for _, name := range []string{"edgetel-collector", "edgetel-query"} {
		sm := find[*ServiceMonitor](t, objs, "ServiceMonitor", name)
		require.Len(t, sm.Spec.Endpoints, 1)
		ep := sm.Spec.Endpoints[0]
		assert.Equal(t, "20s", ep.ScrapeTimeout, name)
		assert.Equal(t, []map[string]any{{"action": "replace", "targetLabel": "team", "replacement": "edge"}}, ep.Relabelings, name)
		assert.Equal(t, "drop", ep.MetricRelabelings[0]["action"], name)
	}
	pods := map[string]corev1.PodSpec{
		"collector": find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector").Spec.Template.Spec,
		"query":     find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query").Spec.Template.Spec,
	}
	for name, pod := range pods {
		assert.Equal(t, "edge-critical", pod.PriorityClassName, name)
		require.Len(t, pod.TopologySpreadConstraints, 1, name)
		assert.Equal(t, "topology.kubernetes.io/zone", pod.TopologySpreadConstraints[0].TopologyKey, name)
	}

	// Defaults: none of them.
	objs = rendered(t, "--set", "collector.serviceMonitor.enabled=true")
	ep := find[*ServiceMonitor](t, objs, "ServiceMonitor", "edgetel-collector").Spec.Endpoints[0]
	assert.Empty(t, ep.ScrapeTimeout)
	assert.Empty(t, ep.Relabelings)
	pod := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector").Spec.Template.Spec
	assert.Empty(t, pod.PriorityClassName)
	assert.Empty(t, pod.TopologySpreadConstraints)

	_, err := Render(t, "--set", "query.serviceMonitor.scrapeTimeout=soon")
	require.Error(t, err, "a scrape timeout that is no duration is refused")
}

// helm uninstall keeps the IPTablesRules CRD (and so the rules object and the edge nodes' DNAT).
func TestCRDKeptOnUninstall(t *testing.T) {
	out, err := Render(t, onboardingValues(t)...)
	require.NoError(t, err)
	found := false
	for _, doc := range bytes.Split(out, []byte("\n---")) {
		var o struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name        string            `json:"name"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
		}
		if sigsyaml.Unmarshal(doc, &o) != nil || o.Kind != "CustomResourceDefinition" {
			continue
		}
		found = true
		assert.Equal(t, "keep", o.Metadata.Annotations["helm.sh/resource-policy"], o.Metadata.Name)
	}
	assert.True(t, found, "the CRD is rendered with onboarding on")
}

// Probes are values (Kubernetes' probe fields over the defaults), and the default requests are
// what BENCHMARKS.md measured a full 250-node shard of the default pipeline to use.
func TestProbesAndRequests(t *testing.T) {
	objs := rendered(t)
	col := container(t, find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector").Spec.Template.Spec, "collector")
	assert.Equal(t, "/", col.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, int32(15), col.LivenessProbe.PeriodSeconds)
	assert.Equal(t, "health", col.ReadinessProbe.HTTPGet.Port.String())
	assert.Equal(t, "4Gi", col.Resources.Requests.Memory().String(), "a full shard's memory (250 nodes)")
	assert.Equal(t, "250m", col.Resources.Requests.Cpu().String(), "a full shard's CPU (250 nodes)")
	q := container(t, find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query").Spec.Template.Spec, "query")
	assert.Equal(t, "/-/healthy", q.LivenessProbe.HTTPGet.Path, "answers without credentials")
	assert.Equal(t, "/-/ready", q.ReadinessProbe.HTTPGet.Path)

	objs = rendered(t, "--set", "collector.livenessProbe.periodSeconds=30", "--set", "collector.livenessProbe.failureThreshold=6",
		"--set", "query.readinessProbe.timeoutSeconds=5")
	col = container(t, find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector").Spec.Template.Spec, "collector")
	assert.Equal(t, int32(30), col.LivenessProbe.PeriodSeconds)
	assert.Equal(t, int32(6), col.LivenessProbe.FailureThreshold)
	assert.Equal(t, "/", col.LivenessProbe.HTTPGet.Path, "the defaults stay under an override")
	q = container(t, find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query").Spec.Template.Spec, "query")
	assert.Equal(t, int32(5), q.ReadinessProbe.TimeoutSeconds)

	_, err := Render(t, "--set", "collector.livenessProbe.periodSecond=30")
	require.Error(t, err, "a misspelt probe field is refused")
}

// The onboarding controller and agent have probes on their /healthz.
func TestOnboardingProbes(t *testing.T) {
	objs := rendered(t, onboardingValues(t)...)
	seen := map[string]bool{}
	for _, o := range objs {
		var pod corev1.PodSpec
		switch w := o.Obj.(type) {
		case *appsv1.Deployment:
			pod = w.Spec.Template.Spec
		case *appsv1.DaemonSet:
			pod = w.Spec.Template.Spec
		default:
			continue
		}
		for _, c := range pod.Containers {
			if c.Name != "controller" && c.Name != "agent" {
				continue
			}
			seen[c.Name] = true
			require.NotNil(t, c.LivenessProbe, "%s/%s", o.Name, c.Name)
			assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, "%s/%s", o.Name, c.Name)
			if c.Name == "agent" {
				assert.True(t, pod.HostNetwork)
				assert.Equal(t, "127.0.0.1", c.LivenessProbe.HTTPGet.Host, "the agent listens on the host's loopback")
				assert.Contains(t, c.Args, "-metrics-listen=127.0.0.1:9108")
			}
		}
	}
	assert.Equal(t, map[string]bool{"controller": true, "agent": true}, seen)
}

// extraEnvs takes Kubernetes EnvVars with valueFrom; the PodMonitor scrapes each collector pod as
// job edgetelcol (what the alerts read), with the operator's relabelings after that.
func TestExtraEnvsAndPodMonitor(t *testing.T) {
	env := `[{"name":"AWS_SECRET_ACCESS_KEY","valueFrom":{"secretKeyRef":{"name":"s3","key":"secret"}}}]`
	objs := rendered(t, "--set-json", "collector.extraEnvs="+env, "--set-json", "query.extraEnvs="+env,
		"--set", "collector.podMonitor.enabled=true", "--set", "collector.podMonitor.scrapeTimeout=10s",
		"--set-json", `collector.podMonitor.metricRelabelings=[{"action":"drop","sourceLabels":["__name__"],"regex":"go_.*"}]`)
	for name, pod := range map[string]corev1.PodSpec{
		"collector": find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector").Spec.Template.Spec,
		"query":     find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query").Spec.Template.Spec,
	} {
		c := container(t, pod, name)
		found := false
		for _, e := range c.Env {
			if e.Name == "AWS_SECRET_ACCESS_KEY" {
				found = true
				require.NotNil(t, e.ValueFrom, name)
				assert.Equal(t, "s3", e.ValueFrom.SecretKeyRef.Name, name)
			}
		}
		assert.True(t, found, name)
	}
	pm := find[*PodMonitor](t, objs, "PodMonitor", "edgetel-collector")
	require.Len(t, pm.Spec.PodMetricsEndpoints, 1)
	ep := pm.Spec.PodMetricsEndpoints[0]
	assert.Equal(t, "metrics", ep.Port)
	assert.Equal(t, "10s", ep.ScrapeTimeout)
	assert.Equal(t, map[string]any{"targetLabel": "job", "replacement": "edgetelcol"}, ep.Relabelings[0])
	assert.Equal(t, "drop", ep.MetricRelabelings[0]["action"])
	assert.Equal(t, "collector", pm.Spec.Selector.MatchLabels["app.kubernetes.io/component"])

	_, err := Render(t, "--set-json", `collector.extraEnvs=[{"value":"x"}]`)
	require.Error(t, err, "an env var without a name is refused")
}

// collector.removeComponents drops a generated part from its section and from every pipeline;
// what is left is a configuration the real collector accepts.
func TestRemoveGeneratedComponents(t *testing.T) {
	objs := rendered(t, "--set", "collector.removeComponents={processors/edgenode,receivers/prometheus/self}")
	cfg := collectorConfig(t, objs)
	assert.NotContains(t, dig(t, cfg, "processors"), "edgenode")
	assert.NotContains(t, dig(t, cfg, "receivers"), "prometheus/self")
	assert.Equal(t, []any{"memory_limiter"}, dig(t, cfg, "service", "pipelines", "metrics", "processors"))
	assert.Equal(t, []any{"kubeedge"}, dig(t, cfg, "service", "pipelines", "metrics", "receivers"))

	_, err := Render(t, "--set", "collector.removeComponents={processors/nope}")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"processors/nope" is no component`)
	_, err = Render(t, "--set", "collector.removeComponents={edgenode}")
	require.Error(t, err, "a component without its section is refused by the schema")

	bin := os.Getenv("EDGETEL_BIN")
	if bin == "" {
		t.Skip("EDGETEL_BIN is not set: the configuration is not validated by the real collector")
	}
	raw, err := sigsyaml.Marshal(cfg)
	require.NoError(t, err)
	dir := t.TempDir()
	p := filepath.Join(dir, "config.yaml")
	bucket := filepath.Join(dir, "objstore.yml")
	require.NoError(t, os.WriteFile(bucket, []byte("type: FILESYSTEM\nconfig: {directory: "+dir+"/bucket}\n"), 0o600))
	require.NoError(t, os.WriteFile(p, bytes.ReplaceAll(raw, []byte("/etc/edgetel/bucket/objstore.yml"), []byte(bucket)), 0o600))
	cmd := exec.Command(filepath.Join(bin, "edgetelcol"), "validate", "--config="+p)
	cmd.Env = append(os.Environ(), "POD_IP=127.0.0.1", "SHARD_INDEX=0")
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "%s", out)
}

// cloudcore's own metrics are scraped into the pipeline (job cloudcore) when targets are given.
func TestCloudcoreMetricsScraped(t *testing.T) {
	cfg := collectorConfig(t, rendered(t))
	assert.NotContains(t, dig(t, cfg, "receivers"), "prometheus/cloudcore", "off without targets")

	cfg = collectorConfig(t, rendered(t, "--set", "collector.cloudcoreMetrics.targets={cloudcore-0.kubeedge:9091,cloudcore-1.kubeedge:9091}"))
	assert.Contains(t, dig(t, cfg, "service", "pipelines", "metrics", "receivers"), "prometheus/cloudcore")
	sc := dig(t, cfg, "receivers", "prometheus/cloudcore", "config", "scrape_configs").([]any)[0].(map[string]any)
	assert.Equal(t, "cloudcore", sc["job_name"])
	assert.Equal(t, []any{"cloudcore-0.kubeedge:9091", "cloudcore-1.kubeedge:9091"}, sc["static_configs"].([]any)[0].(map[string]any)["targets"])

	_, err := Render(t, "--set", "collector.cloudcoreMetrics.targets={http://cloudcore:9091/metrics}")
	require.Error(t, err, "host:port only")
}

// The onboarding controller and agent and the edge agent take the same pod keys as the collector
// (priorityClassName, extraEnvs with valueFrom, probes; topology spread for the Deployment; a
// DaemonSet has one pod per node to spread).
func TestOnboardingAndEdgeAgentParityKeys(t *testing.T) {
	env := `[{"name":"HTTPS_PROXY","valueFrom":{"configMapKeyRef":{"name":"proxy","key":"url"}}}]`
	spread := `[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"ScheduleAnyway"}]`
	args := append(onboardingValues(t), "--set", "edgeAgent.enabled=true", "--set", "edgeAgent.endpoint=https://rw.example/api/v1/write",
		"--set-json", "onboard.controller.topologySpreadConstraints="+spread,
		"--set", "onboard.controller.readinessProbe.periodSeconds=3")
	for _, c := range []string{"onboard.controller", "onboard.agent", "edgeAgent"} {
		args = append(args, "--set", c+".priorityClassName=edge-critical", "--set-json", c+".extraEnvs="+env,
			"--set", c+".livenessProbe.failureThreshold=7")
	}
	objs := rendered(t, args...)
	controller := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-onboard-controller").Spec.Template.Spec
	for name, pc := range map[string]struct {
		pod       corev1.PodSpec
		container string
	}{
		"controller": {controller, "controller"},
		"agent":      {find[*appsv1.DaemonSet](t, objs, "DaemonSet", "edgetel-onboard-agent").Spec.Template.Spec, "agent"},
		"edge agent": {find[*appsv1.DaemonSet](t, objs, "DaemonSet", "edgetel-edge-agent").Spec.Template.Spec, "agent"},
	} {
		assert.Equal(t, "edge-critical", pc.pod.PriorityClassName, name)
		c := container(t, pc.pod, pc.container)
		require.NotNil(t, c.LivenessProbe, name)
		assert.EqualValues(t, 7, c.LivenessProbe.FailureThreshold, name)
		require.NotNil(t, c.LivenessProbe.HTTPGet, "%s: the default probe stays under the override", name)
		found := false
		for _, e := range c.Env {
			if e.Name == "HTTPS_PROXY" {
				found = e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef.Name == "proxy"
			}
		}
		assert.True(t, found, name)
	}
	require.Len(t, controller.TopologySpreadConstraints, 1)
	assert.EqualValues(t, 3, container(t, controller, "controller").ReadinessProbe.PeriodSeconds)
}
