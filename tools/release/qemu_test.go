package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The arm binaries are executed, not only built: under qemu-user, edgetelcol lists its
// components, and an edge agent (examples/edge-agent/config.yaml, as on an edge node) scrapes
// one simulated node (edgesim's plain-HTTP kubelet, like edged's on 127.0.0.1:10350) and
// remote-writes to a real Prometheus, which must come to hold the node's series.
func TestArmBinariesRunUnderQemu(t *testing.T) {
	dist := distDir(t)
	for _, arch := range []struct{ dir, qemuEnv string }{
		{"linux_arm64", "EDGETEL_QEMU_AARCH64"},
		{"linux_armv7", "EDGETEL_QEMU_ARM"},
	} {
		t.Run(arch.dir, func(t *testing.T) {
			qemu := program(t, arch.qemuEnv)
			bin := filepath.Join(dist, "bin", arch.dir)
			out, err := exec.Command(qemu, filepath.Join(bin, "edgetelcol"), "components").CombinedOutput()
			require.NoError(t, err, "%s", out)
			for _, c := range []string{"kubeedge", "edgenode", "edgeremotewrite", "objstore"} {
				assert.Contains(t, string(out), "name: "+c, "edgetelcol components")
			}
			for _, cmd := range []string{"edgetel-query", "edgetel-onboard"} {
				out, err := exec.Command(qemu, filepath.Join(bin, cmd), "--help").CombinedOutput()
				assert.Contains(t, strings.ToLower(string(out)), "usage", "%s --help: %v", cmd, err)
			}
			rss := edgeAgentDelivers(t, qemu, filepath.Join(bin, "edgetelcol"))
			t.Logf("%s edge agent, 1 node: RSS %.1f MiB under qemu-user (qemu's own memory included)", arch.dir, float64(rss)/(1<<20))
		})
	}
}

// edgeAgentDelivers runs edgesim (1 node), Prometheus as the remote-write receiver and the edge
// agent under qemu, waits for the node's samples to arrive and returns the agent's RSS then.
func edgeAgentDelivers(t *testing.T, qemu, edgetelcol string) int64 {
	binDir := program(t, "EDGETEL_BIN")
	prometheus := program(t, "EDGETEL_PROMETHEUS")
	repo := program(t, "EDGETEL_REPO")
	dir := t.TempDir()

	fleetFile := filepath.Join(dir, "fleet.json")
	start(t, dir, "edgesim", exec.Command(filepath.Join(binDir, "edgesim"), "--nodes", "1", "--direct",
		"--tls-dir", filepath.Join(dir, "tls"), "--fleet-file", fleetFile, "--listen", freeAddr(t),
		"--admin-listen", "", "--step", "2s", "--log-stats", "0"))
	var fleet struct {
		Nodes []struct{ Name, IP, Direct string }
	}
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(fleetFile)
		return err == nil && json.Unmarshal(b, &fleet) == nil && len(fleet.Nodes) == 1 && fleet.Nodes[0].Direct != ""
	}, time.Minute, 100*time.Millisecond, "edgesim's fleet file")
	node := fleet.Nodes[0]

	promAddr := freeAddr(t)
	promConfig := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(promConfig, []byte("global: {}\n"), 0o644))
	start(t, dir, "prometheus", exec.Command(prometheus, "--config.file", promConfig, "--storage.tsdb.path", filepath.Join(dir, "prom"),
		"--web.listen-address", promAddr, "--web.enable-remote-write-receiver"))

	agent := exec.Command(qemu, edgetelcol, "--config", filepath.Join(repo, "examples", "edge-agent", "config.yaml"))
	agent.Env = append(os.Environ(), "NODE_NAME="+node.Name, "NODE_IP="+node.IP, "KUBELET_ENDPOINT="+node.Direct,
		"REMOTE_WRITE_URL=http://"+promAddr+"/api/v1/write", "BUFFER_DIR="+filepath.Join(dir, "buffer"),
		"HEALTH_ENDPOINT="+freeAddr(t), "TELEMETRY_PORT="+port(t, freeAddr(t)), "SCRAPE_INTERVAL=2s", "SCRAPE_TIMEOUT=2s")
	start(t, dir, "edge-agent", agent)

	query := fmt.Sprintf(`count({cluster="edge",node=%q})`, node.Name)
	var series int
	require.Eventually(t, func() bool {
		series = promCount(promAddr, query)
		return series > 0
	}, 3*time.Minute, time.Second, "the edge agent's samples reach Prometheus (agent log: %s)", filepath.Join(dir, "edge-agent.log"))
	t.Logf("Prometheus holds %d series of node %s", series, node.Name)
	// A few more scrapes, so that the RSS is the running agent's, not its start-up's.
	time.Sleep(6 * time.Second)
	return rssOf(t, agent.Process.Pid)
}

// start runs cmd with its output in <dir>/<name>.log, and stops it (SIGTERM, then SIGKILL) at
// the end of the test.
func start(t *testing.T, dir, name string, cmd *exec.Cmd) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start(), name)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("%s log (tail):\n%s", name, tail(b, 3000))
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// freeAddr is a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func port(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return p
}

// promCount is the value of a count() query, 0 when there is none (or no answer yet).
func promCount(addr, query string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(query), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Data.Result) == 0 {
		return 0
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	n, _ := strconv.Atoi(s)
	return n
}

// rssOf reads a process' resident set size from /proc.
func rssOf(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
