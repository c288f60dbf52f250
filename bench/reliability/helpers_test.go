// Package reliability runs edgetelcol as a real process against edgesim and a counting sink with
// faults injected, and checks what was lost against what edgetelcol counted as dropped.
package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/edgetel/edgetel/bench/peers"
)

var collectorBin string

// TestMain builds edgetelcol once from this tree unless EDGETEL_EDGETELCOL names a binary.
func TestMain(m *testing.M) {
	collectorBin = os.Getenv("EDGETEL_EDGETELCOL")
	if collectorBin == "" {
		dir, err := os.MkdirTemp("", "reliability-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		collectorBin = filepath.Join(dir, "edgetelcol")
		cmd := exec.Command("go", "build", "-o", collectorBin, "github.com/edgetel/edgetel/cmd/edgetelcol")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building edgetelcol:", err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// interval is short so a test sees many scrapes in seconds; edgesim steps at the same pace.
const interval = 2 * time.Second

func newEnv(t *testing.T, nodes int) *harness.Env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), nodes)
}

// newEnvIn is newEnv in dir, which may already hold edgesim's tls/ (certificates it then uses).
func newEnvIn(t *testing.T, dir string, nodes int) *harness.Env {
	t.Helper()
	return newEnvEvery(t, dir, nodes, interval)
}

// newEnvEvery is newEnvIn with a scrape interval (and edgesim step) of its own.
func newEnvEvery(t *testing.T, dir string, nodes int, every time.Duration) *harness.Env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	env, err := harness.NewEnv(ctx, harness.EnvConfig{Dir: dir, Nodes: nodes, Interval: every,
		SinkPairs: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		env.Close()
		cancel()
	})
	return env
}

// collector is a running edgetelcol with its own metrics on a loopback port.
type collector struct {
	t      *testing.T
	env    *harness.Env
	sys    harness.System
	params peers.Params
	proc   *harness.Process
}

// startCollector starts edgetelcol; edit may change its parameters (transport, max_bytes, CA...).
func startCollector(t *testing.T, env *harness.Env, transport string, maxBytes int64, edit func(*peers.Params)) *collector {
	t.Helper()
	return startSystem(t, env, harness.Edgetelcol(collectorBin, transport, maxBytes), edit)
}

// startSystem starts sys, an edgetelcol configuration of a test's own, as startCollector does.
func startSystem(t *testing.T, env *harness.Env, sys harness.System, edit func(*peers.Params)) *collector {
	t.Helper()
	p, err := env.Params(sys)
	require.NoError(t, err)
	addr, err := harness.FreeAddr()
	require.NoError(t, err)
	_, port, _ := strings.Cut(addr, ":")
	p.TelemetryPort, _ = strconv.Atoi(port)
	if edit != nil {
		edit(&p)
	}
	c := &collector{t: t, env: env, sys: sys, params: p}
	c.start()
	t.Cleanup(func() { c.proc.Stop(20 * time.Second) })
	return c
}

func (c *collector) start() {
	c.t.Helper()
	proc, _, err := c.env.Relaunch(c.sys, c.params)
	require.NoError(c.t, err)
	c.proc = proc
	if !assert.Eventually(c.t, func() bool { _, err := c.metrics(); return err == nil }, 60*time.Second, 200*time.Millisecond) {
		logs, _ := filepath.Glob(filepath.Join(filepath.Dir(c.params.DataDir), "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			c.t.Logf("%s:\n%s", l, tail(b, 4000))
		}
		c.t.FailNow()
	}
}

// kill SIGKILLs the collector.
func (c *collector) kill() { require.NoError(c.t, c.proc.Kill()) }

// metrics scrapes the collector's own metrics, summed over label sets by name; a name with
// {label="value"} keeps only the series carrying it, under "name{label=value}".
func (c *collector) metrics() (map[string]float64, error) { return ownMetrics(c.params.TelemetryPort) }

// ownMetrics is collector.metrics for an edgetelcol serving its metrics on 127.0.0.1:port.
func ownMetrics(port int) (map[string]float64, error) { return harness.OwnMetrics(port) }

// counter returns the first metric whose name contains part (the Collector's exporter may add a
// prefix or a suffix).
func counter(m map[string]float64, part string) float64 {
	for k, v := range m {
		if strings.Contains(k, part) && !strings.Contains(k, "{") {
			return v
		}
	}
	return 0
}

func dropped(m map[string]float64, reason string) float64 {
	for k, v := range m {
		if strings.Contains(k, "edgeremotewrite_samples_dropped") && strings.HasSuffix(k, "{reason="+reason+"}") {
			return v
		}
	}
	return 0
}

// accounts are the exporter's counters at one moment.
type accounts struct{ buffered, sent, dropped float64 }

func (c *collector) accounts() accounts {
	m, err := c.metrics()
	require.NoError(c.t, err)
	// Named with the exporter's type: the receiver has a samples_dropped of its own.
	return accounts{counter(m, "edgeremotewrite_samples_buffered"), counter(m, "edgeremotewrite_samples_sent"),
		counter(m, "edgeremotewrite_samples_dropped")}
}

// drain waits until everything buffered is either sent or counted as dropped.
func (c *collector) drain(timeout time.Duration) accounts {
	c.t.Helper()
	var a accounts
	for deadline := time.Now().Add(timeout); ; time.Sleep(time.Second) {
		a = c.accounts()
		if a.buffered > 0 && a.buffered == a.sent+a.dropped {
			return a
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("backlog not drained in %v: %+v", timeout, a)
		}
	}
}

func (c *collector) rss() harness.ProcSample {
	c.t.Helper()
	p, err := harness.ReadProc(c.proc.Pid())
	require.NoError(c.t, err)
	return p
}

// boundedRSS asserts the collector's resident memory did not grow past what it used at
// steady state plus slack: faults must not make memory grow with time.
func boundedRSS(t *testing.T, steady, now harness.ProcSample) {
	t.Helper()
	limit := steady.RSS*3/2 + 128<<20
	require.LessOrEqual(t, now.RSS, limit, "RSS %d MiB grew past %d MiB (steady %d MiB)", now.RSS>>20, limit>>20, steady.RSS>>20)
}

func soak(t *testing.T) {
	t.Helper()
	if testing.Short() || os.Getenv("EDGETEL_SOAK") == "" {
		t.Skip("soak test: set EDGETEL_SOAK=1 (make soak)")
	}
}

func wait(d time.Duration) { time.Sleep(d) }

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
