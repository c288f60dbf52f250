package harness

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/testprog"
	"github.com/edgetel/edgetel/internal/testing/tlsutil"
)

// TestChartSystemStarts renders the chart system's configuration as the bench does, has the real
// collector validate it and then start on it, so that a chart change cannot leave make bench
// with a system that does not start.
func TestChartSystemStarts(t *testing.T) {
	helm := testprog.Path(t, "EDGETEL_HELM", "tool-helm")
	bin := filepath.Join(testprog.Commands(t, "edgetelcol"), "edgetelcol")
	dir := t.TempDir()
	s := EdgetelcolChart(bin, helm, "1Gi")
	tls, err := tlsutil.Ensure(filepath.Join(dir, "tls"), tlsutil.Options{})
	require.NoError(t, err)
	p := peers.Params{Interval: 15 * time.Second, FleetFile: filepath.Join(dir, "fleet.json"),
		DataDir: filepath.Join(dir, "data"), CloudcoreAddr: "127.0.0.1:10003", CAFile: tls.CAFile}
	p.PprofAddr, err = FreeAddr()
	require.NoError(t, err)
	p.TelemetryPort, err = freePort()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p.FleetFile, []byte(`{"nodes": []}`), 0o600))
	args, err := s.Args(dir, p)
	require.NoError(t, err)
	rendered, err := os.ReadFile(filepath.Join(dir, "chart-config.yaml"))
	require.NoError(t, err)
	for _, pod := range []string{"/etc/edgetel", "/var/lib/edgetel", "cloudcore.kubeedge.svc"} {
		require.NotContains(t, string(rendered), pod, "a path or address of the pod is left")
	}
	require.Contains(t, string(rendered), "objstore", "the chart's default pipeline stores blocks")
	require.Contains(t, s.Env, "GOMEMLIMIT=858993459", "the chart's 80% of 1Gi")
	over, err := os.ReadFile(filepath.Join(dir, "bench-overrides.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(over), "limit_mib: ", "the memory_limiter takes the pod's limit, not the machine's")
	cmd := exec.Command(bin, append([]string{"validate"}, args...)...)
	cmd.Env = append(os.Environ(), s.Env...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\n%s", out, strings.Join(args, " "))

	proc, err := StartEnv(s.Name, dir, s.Env, bin, args...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proc.Stop(10 * time.Second) })
	var cfg struct {
		Extensions struct {
			Health struct {
				Endpoint string `json:"endpoint"`
			} `json:"health_check"`
		} `json:"extensions"`
	}
	require.NoError(t, sigsyaml.Unmarshal(rendered, &cfg))
	healthy := func() bool {
		resp, err := http.Get("http://" + cfg.Extensions.Health.Endpoint + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	require.Eventually(t, func() bool {
		exited, _ := proc.Exited()
		return exited || healthy()
	}, time.Minute, 100*time.Millisecond, "the collector reports healthy: every component started")
	if exited, _ := proc.Exited(); exited {
		log, _ := os.ReadFile(filepath.Join(dir, s.Name+".log"))
		t.Fatalf("the collector exited:\n%s", log)
	}
}
