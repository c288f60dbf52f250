package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/charttest"
	"github.com/edgetel/edgetel/internal/testing/repo"
)

// EdgetelcolChart is edgetelcol running the collector configuration the Helm chart renders with
// its default values (the objstore exporter's local TSDB, the memory_limiter and the edgenode
// guard), rendered by the real helm. Only what a pod gets from its surroundings is replaced: the
// pod's files (bucket, CA, head token) and addresses, the volume's path, the scrape interval (the
// run's, as every system gets), and the discovery: edgesim's fleet file instead of the API
// server, which the bench does not run, and so a fixed shard count rather than the
// StatefulSet's. The edgenode processor then knows no node, so its guard holds no state; its cost
// per series is measured apart (BENCHMARKS.md). Nothing is sent: what it stored is counted from
// its TSDB.
//
// memLimit, when not empty, is the pod's memory limit (collector.resources.limits.memory, e.g.
// 1Gi): the process gets the GOMEMLIMIT the chart's StatefulSet sets for it, and the
// memory_limiter the limits the chart's percentages give of it (outside a container it would
// take them of the machine's memory).
func EdgetelcolChart(bin, helm, memLimit string) System {
	s := System{Name: "edgetelcol-chart", Binary: bin, Durable: true, Pprof: true, TSDB: "tsdb/tsdb", // the chart's exporter directory is <volume>/tsdb, its TSDB in tsdb/ under it
		Env: []string{"SHARD_INDEX=0", "POD_IP=127.0.0.1"}}
	pod, podErr := renderChart(helm, memLimit)
	if podErr == nil && pod.goMemLimit != "" {
		s.Env = append(s.Env, "GOMEMLIMIT="+pod.goMemLimit)
	}
	s.Args = func(dir string, p peers.Params) ([]string, error) {
		if podErr != nil {
			return nil, podErr
		}
		cfg := pod.config
		files, err := podFiles(dir, p)
		if err != nil {
			return nil, err
		}
		health, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		head, err := FreeAddr()
		if err != nil {
			return nil, err
		}
		cfg = strings.NewReplacer(
			"${env:POD_IP}:13133", health,
			"${env:POD_IP}:9095", head,
			"port: 8888", "port: "+strconv.Itoa(p.TelemetryPort),
			"${env:POD_IP}:8888", "127.0.0.1:"+strconv.Itoa(p.TelemetryPort),
			"/etc/edgetel/bucket/objstore.yml", files.bucket,
			"/etc/edgetel/head-token/token", files.token,
			"/etc/edgetel/cloudcore/ca.crt", p.CAFile,
			"cloudcore.kubeedge.svc:10003", p.CloudcoreAddr,
			"/var/lib/edgetel", p.DataDir,
		).Replace(cfg)
		base, err := writeFile(dir, "chart-config.yaml", cfg)
		if err != nil {
			return nil, err
		}
		over, err := chartOverrides(cfg, p, files.kubeconfig, pod.limitBytes)
		if err != nil {
			return nil, err
		}
		overPath, err := writeFile(dir, "bench-overrides.yaml", over)
		if err != nil {
			return nil, err
		}
		return []string{"--config=" + base, "--config=" + overPath}, nil
	}
	return s
}

// chartPod is what the chart renders for a collector pod.
type chartPod struct {
	config     string // the collector's config.yaml
	goMemLimit string // the container's GOMEMLIMIT ("" without a memory limit)
	limitBytes int64  // the container's memory limit (0: none)
}

// renderChart renders the chart with its defaults (and memLimit as the collector's memory limit
// and request, when set).
func renderChart(helm, memLimit string) (chartPod, error) {
	var pod chartPod
	root, err := repo.Root()
	if err != nil {
		return pod, err
	}
	// One shard with a fixed count: following the StatefulSet's count needs the API server.
	args := []string{"template", "edgetel", filepath.Join(root, "charts", "edgetel"),
		"--namespace", "edgetel", "--kube-version", charttest.KubeVersion, "--set", "collector.followShards=false"}
	if memLimit != "" {
		args = append(args, "--set", "collector.resources.limits.memory="+memLimit,
			"--set", "collector.resources.requests.memory="+memLimit)
	}
	out, err := charttest.RunHelm(helm, args...)
	if err != nil {
		return pod, err
	}
	objs, err := charttest.DecodeAll(out)
	if err != nil {
		return pod, err
	}
	for _, o := range objs {
		switch obj := o.Obj.(type) {
		case *corev1.ConfigMap:
			if o.Name == "edgetel-collector" {
				pod.config = obj.Data["config.yaml"]
			}
		case *appsv1.StatefulSet:
			if o.Name == "edgetel-collector" {
				pod.goMemLimit, pod.limitBytes = memorySettings(obj.Spec.Template.Spec.Containers)
			}
		}
	}
	if pod.config == "" {
		return pod, fmt.Errorf("the chart rendered no edgetel-collector ConfigMap")
	}
	return pod, nil
}

// memorySettings reads the collector container's GOMEMLIMIT and memory limit.
func memorySettings(cs []corev1.Container) (goMemLimit string, limit int64) {
	for _, c := range cs {
		if c.Name != "collector" {
			continue
		}
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				goMemLimit = e.Value
			}
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			limit = q.Value()
		}
	}
	return goMemLimit, limit
}

type chartFiles struct{ bucket, token, kubeconfig string }

// podFiles writes what the chart mounts into the pod: a FILESYSTEM bucket, the head API's
// token, and a kubeconfig for the edgenode processor that reaches no API server.
func podFiles(dir string, p peers.Params) (chartFiles, error) {
	f := chartFiles{bucket: filepath.Join(dir, "objstore.yml"), token: filepath.Join(dir, "head-token"),
		kubeconfig: filepath.Join(dir, "kubeconfig")}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return f, err
	}
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
`
	for path, content := range map[string]string{
		f.bucket:     "type: FILESYSTEM\nconfig: {directory: " + filepath.Join(p.DataDir, "bucket") + "}\n",
		f.token:      hex.EncodeToString(tok),
		f.kubeconfig: kubeconfig,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			return f, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return f, nil
}

// chartOverrides is merged over the rendered config (the Collector merges --config files in
// order): file discovery of edgesim's fleet, the edgenode processor's kubeconfig, pprof, and
// with a memory limit the memory_limiter's percentages of it in MiB.
func chartOverrides(rendered string, p peers.Params, kubeconfig string, limit int64) (string, error) {
	var cfg struct {
		Processors struct {
			MemoryLimiter struct {
				Limit int64 `json:"limit_percentage"`
				Spike int64 `json:"spike_limit_percentage"`
			} `json:"memory_limiter"`
		} `json:"processors"`
		Service struct {
			Extensions []string `json:"extensions"`
		} `json:"service"`
	}
	if err := sigsyaml.Unmarshal([]byte(rendered), &cfg); err != nil {
		return "", fmt.Errorf("reading the chart's collector config: %w", err)
	}
	over := map[string]any{
		"receivers": map[string]any{"kubeedge": map[string]any{
			"collection_interval": p.Interval.String(), // the run's, for all systems alike
			"discovery":           map[string]any{"mode": "file", "file": map[string]any{"path": p.FleetFile}},
		}},
		"processors": map[string]any{"edgenode": map[string]any{"auth_type": "kubeConfig", "kubeconfig": kubeconfig}},
		"extensions": map[string]any{"pprof": map[string]any{"endpoint": p.PprofAddr}},
		"service":    map[string]any{"extensions": append(cfg.Service.Extensions, "pprof")},
	}
	if ml := cfg.Processors.MemoryLimiter; limit > 0 && ml.Limit > 0 {
		over["processors"].(map[string]any)["memory_limiter"] = map[string]any{
			"limit_percentage": 0, "spike_limit_percentage": 0,
			"limit_mib": limit * ml.Limit / 100 >> 20, "spike_limit_mib": limit * ml.Spike / 100 >> 20,
		}
	}
	out, err := sigsyaml.Marshal(over)
	return string(out), err
}
