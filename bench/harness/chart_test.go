package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// TestChartSystemConfigIsValid renders the chart system's configuration as the bench does and
// has the real collector validate it, so that a chart change cannot leave make bench with a
// system that does not start.
func TestChartSystemConfigIsValid(t *testing.T) {
	helm := testprog.Path(t, "EDGETEL_HELM", "tool-helm")
	bin := filepath.Join(testprog.Commands(t, "edgetelcol"), "edgetelcol")
	dir := t.TempDir()
	s := EdgetelcolChart(bin, helm, "1Gi")
	p := peers.Params{Interval: 15 * time.Second, FleetFile: filepath.Join(dir, "fleet.json"),
		DataDir: filepath.Join(dir, "data"), PprofAddr: "127.0.0.1:1777", CloudcoreAddr: "127.0.0.1:10003",
		CAFile: filepath.Join(dir, "ca.crt"), TelemetryPort: 8899}
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
}
