package harness

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/charttest"
	"github.com/edgetel/edgetel/internal/testing/repo"
)

// EdgetelcolChart is edgetelcol running the collector configuration the Helm chart renders with
// its default values (the objstore exporter's local TSDB, the memory_limiter and the edgenode
// guard), rendered by the real helm. Only what a pod gets from its surroundings is replaced: the
// pod's files (bucket, CA, head token) and addresses, the volume's path, and the discovery
// (edgesim's fleet file instead of the API server, which the bench does not run: the edgenode
// processor then knows no node, so its guard holds no state; its cost per series is measured
// apart, BENCHMARKS.md). Nothing is sent: what it stored is counted from its TSDB.
func EdgetelcolChart(bin, helm string) System {
	s := System{Name: "edgetelcol-chart", Binary: bin, Durable: true, Pprof: true, TSDB: "tsdb/tsdb", // the chart's exporter directory is <volume>/tsdb, its TSDB in tsdb/ under it
		Env: []string{"SHARD_INDEX=0", "POD_IP=127.0.0.1"}}
	s.Args = func(dir string, p peers.Params) ([]string, error) {
		cfg, err := chartCollectorConfig(helm)
		if err != nil {
			return nil, err
		}
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
		over, err := chartOverrides(cfg, p, files.kubeconfig)
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

// chartCollectorConfig renders the chart with its defaults and returns the collector's config.
func chartCollectorConfig(helm string) (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	out, err := charttest.RunHelm(helm, "template", "edgetel", filepath.Join(root, "charts", "edgetel"),
		"--namespace", "edgetel", "--kube-version", charttest.KubeVersion)
	if err != nil {
		return "", err
	}
	objs, err := charttest.DecodeAll(out)
	if err != nil {
		return "", err
	}
	for _, o := range objs {
		if cm, ok := o.Obj.(*corev1.ConfigMap); ok && o.Name == "edgetel-collector" {
			return cm.Data["config.yaml"], nil
		}
	}
	return "", fmt.Errorf("the chart rendered no edgetel-collector ConfigMap")
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
// order): file discovery of edgesim's fleet, the edgenode processor's kubeconfig, and pprof.
func chartOverrides(rendered string, p peers.Params, kubeconfig string) (string, error) {
	var cfg struct {
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
	out, err := sigsyaml.Marshal(over)
	return string(out), err
}
