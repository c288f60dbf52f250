package charttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sigsyaml "sigs.k8s.io/yaml"
)

// TestEdgeAgentReportsItself checks that the edge agent scrapes its own telemetry into its own
// pipeline (so its buffer metrics travel with its data to the remote store, where the buffer
// alerts read them), one instance per node, from the port its telemetry serves on; and, with
// EDGETEL_BIN, that the real collector accepts the configuration. The example configuration
// does the same.
func TestEdgeAgentReportsItself(t *testing.T) {
	objs := rendered(t, "--set", "edgeAgent.enabled=true", "--set", "edgeAgent.endpoint=https://rw.example.com/api/v1/write")
	cfg := collectorConfig(t, objs, "edgetel-edge-agent")
	checkSelfScrape(t, cfg)

	raw, err := os.ReadFile(filepath.Join(RepoRoot(t), "examples", "edge-agent", "config.yaml"))
	require.NoError(t, err)
	var example map[string]any
	require.NoError(t, sigsyaml.Unmarshal(raw, &example))
	checkSelfScrape(t, example)

	bin := os.Getenv("EDGETEL_BIN")
	if bin == "" {
		t.Skip("EDGETEL_BIN is not set: the configuration is not validated by the real collector")
	}
	cm, err := sigsyaml.Marshal(cfg)
	require.NoError(t, err)
	for name, conf := range map[string][]byte{"chart": cm, "example": raw} {
		p := filepath.Join(t.TempDir(), "config.yaml")
		require.NoError(t, os.WriteFile(p, conf, 0o600))
		cmd := exec.Command(filepath.Join(bin, "edgetelcol"), "validate", "--config="+p)
		cmd.Env = append(os.Environ(), "NODE_NAME=edge-1", "NODE_IP=10.0.0.1", "REMOTE_WRITE_URL=http://127.0.0.1:1/api/v1/write")
		out, err := cmd.CombinedOutput()
		assert.NoError(t, err, "%s: %s", name, out)
	}
}

func checkSelfScrape(t *testing.T, cfg map[string]any) {
	t.Helper()
	assert.Contains(t, dig(t, cfg, "service", "pipelines", "metrics", "receivers"), "prometheus/self")
	scrapes := dig(t, cfg, "receivers", "prometheus/self", "config", "scrape_configs").([]any)
	require.Len(t, scrapes, 1)
	sc := scrapes[0].(map[string]any)
	assert.Equal(t, "edgetel-edge-agent", sc["job_name"])
	static := sc["static_configs"].([]any)[0].(map[string]any)
	assert.Equal(t, "${env:NODE_NAME}", static["labels"].(map[string]any)["instance"], "one instance per node")
	reader := dig(t, cfg, "service", "telemetry", "metrics", "readers").([]any)[0]
	prom := reader.(map[string]any)["pull"].(map[string]any)["exporter"].(map[string]any)["prometheus"].(map[string]any)
	target := static["targets"].([]any)[0].(string)
	assert.Equal(t, target, prom["host"].(string)+":"+portString(prom["port"]), "the scrape reads the telemetry endpoint")
}

func portString(v any) string {
	switch p := v.(type) {
	case float64:
		return strconv.FormatInt(int64(p), 10)
	case string:
		return p
	}
	return ""
}
