// Package freshe2e runs edgesim → edgetelcol (objstore exporter at the default 2h blocks, with
// head_api on) as real processes and checks issue #18's promise on freshness: the newest
// `up{job="kubeedge"}` sample, scraped less than one interval ago, is answered both by
// edgetel-query (bucket + the collector's head) and by the real Thanos Query fanned out to a
// Thanos sidecar beside the collector and a Thanos store gateway over the bucket.
//
// The binaries come from $EDGETEL_BIN (`make test` builds them into ./bin), else the test builds
// them from this tree; Thanos from $EDGETEL_THANOS (skipped when unset).
package freshe2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/thanostest"
)

// interval is the scrape interval (and edgesim's step).
const interval = 5 * time.Second

var commands = []string{"edgesim", "edgetelcol", "edgetel-query"}

func binDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("EDGETEL_BIN"); dir != "" {
		for _, c := range commands {
			require.FileExists(t, filepath.Join(dir, c), "EDGETEL_BIN=%s", dir)
		}
		abs, err := filepath.Abs(dir)
		require.NoError(t, err)
		return abs
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, c := range commands {
		args = append(args, "github.com/edgetel/edgetel/cmd/"+c)
	}
	cmd := exec.Command("go", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), "go build: %s", &out)
	return dir
}

// start runs a command until the test ends; its output goes to <dir>/<name>.log, shown when
// the test fails.
func start(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	logPath := filepath.Join(dir, name+".log")
	log, err := os.Create(logPath)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, tailOf(string(out), 3000))
		}
	})
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func waitOK(t *testing.T, what, u string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(u)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 2*time.Minute, 100*time.Millisecond, "%s never answered %s", what, u)
}

const collectorConfig = `receivers:
  kubeedge:
    collection_interval: %[1]s
    scrape_timeout: 4s
    job: kubeedge
    discovery:
      mode: file
      file: {path: %[2]s/fleet.json}
    transport:
      mode: cloudcore
      cloudcore:
        endpoints: ["%[3]s"]
        tls: {ca_file: %[2]s/tls/ca.crt}
exporters:
  objstore:
    directory: %[2]s/objstore
    external_labels: {cluster: e2e}
    head_api:
      endpoint: %[4]s
extensions:
  health_check:
    endpoint: %[5]s
service:
  extensions: [health_check]
  telemetry:
    metrics: {level: none}
  pipelines:
    metrics:
      receivers: [kubeedge]
      exporters: [objstore]
`

func TestNewestSampleFromHeadEverywhere(t *testing.T) {
	thanostest.Bin(t)
	bin := binDir(t)
	dir := t.TempDir()
	cloudcore, head, health, query := thanostest.FreeAddr(t), thanostest.FreeAddr(t), thanostest.FreeAddr(t), thanostest.FreeAddr(t)

	start(t, dir, "edgesim", filepath.Join(bin, "edgesim"), "--nodes=3", "--listen="+cloudcore, "--admin-listen=",
		"--fleet-file="+filepath.Join(dir, "fleet.json"), "--tls-dir="+filepath.Join(dir, "tls"),
		"--step="+interval.String(), "--log-stats=0")
	require.Eventually(t, func() bool {
		st, err := os.Stat(filepath.Join(dir, "fleet.json"))
		return err == nil && st.Size() > 0
	}, time.Minute, 100*time.Millisecond, "edgesim writes its fleet")

	conf := filepath.Join(dir, "collector.yaml")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, collectorConfig, interval, dir, cloudcore, head, health), 0o600))
	// The store gateway needs the FILESYSTEM bucket's directory before the first block exists.
	bucketDir := filepath.Join(dir, "objstore", "bucket")
	require.NoError(t, os.MkdirAll(bucketDir, 0o750))
	start(t, dir, "edgetelcol", filepath.Join(bin, "edgetelcol"), "--config="+conf)
	waitOK(t, "edgetelcol's head API", "http://"+head+"/-/ready")

	start(t, dir, "edgetel-query", filepath.Join(bin, "edgetel-query"), "--listen="+query, "--bucket-dir="+bucketDir,
		"--cache-dir="+filepath.Join(dir, "query-cache"), "--head.endpoint=http://"+head)
	waitOK(t, "edgetel-query", "http://"+query+"/-/ready")

	bucketConf := filepath.Join(dir, "bucket.yaml")
	require.NoError(t, os.WriteFile(bucketConf, []byte("type: FILESYSTEM\nconfig: {directory: "+bucketDir+"}\n"), 0o600))
	store := thanostest.Start(t, "store", true, "--objstore.config-file="+bucketConf, "--data-dir="+filepath.Join(dir, "store"))
	sidecar := thanostest.Start(t, "sidecar", true, "--prometheus.url=http://"+head, "--tsdb.path="+filepath.Join(dir, "sidecar"))
	thanos := thanostest.Start(t, "query", true, "--endpoint="+store.GRPC, "--endpoint="+sidecar.GRPC)

	// Both answer, at the same evaluation time, the newest sample of every node, taken less
	// than one interval before it, with the collector's external label; and they agree.
	var last string
	ok := assert.Eventually(t, func() bool {
		at := time.Now()
		ours, err := newest(t, "http://"+query, at)
		if err != nil {
			last = "edgetel-query: " + err.Error()
			return false
		}
		theirs, err := newest(t, "http://"+thanos.HTTP, at)
		if err != nil {
			last = "thanos query: " + err.Error()
			return false
		}
		last = fmt.Sprintf("edgetel-query %v, thanos query %v at %s", ours, theirs, at.Format(time.RFC3339Nano))
		nodes := map[string]bool{}
		for _, s := range ours {
			nodes[s.node] = s.cluster == "e2e"
		}
		if len(nodes) != 3 || slices.Contains(slices.Collect(maps.Values(nodes)), false) || !slices.Equal(ours, theirs) {
			return false
		}
		for _, s := range ours {
			if at.Sub(s.ts) >= interval {
				return false
			}
		}
		return true
	}, 2*time.Minute, 200*time.Millisecond)
	if !ok {
		t.Fatalf("newest samples: %s", last)
	}
	t.Log(last)

	// Over a range, each scrape once: at most one sample per interval per series, the same
	// counts from both (a head served twice would double them).
	at := time.Now()
	counts := map[string]map[string]float64{}
	for name, base := range map[string]string{"edgetel-query": "http://" + query, "thanos": "http://" + thanos.HTTP} {
		a, err := thanostest.Query(t, base, `count_over_time(up{job="kubeedge"}[30s])`, at, nil)
		require.NoError(t, err)
		require.Len(t, a.Vector, 9, name)
		counts[name] = map[string]float64{}
		for _, s := range a.Vector {
			require.LessOrEqual(t, float64(s.Value), float64(30*time.Second/interval)+1, // +1: scrape jitter
				"%s: %s", name, s.Metric)
			counts[name][s.Metric.String()] = float64(s.Value)
		}
	}
	require.Equal(t, counts["edgetel-query"], counts["thanos"])
}

type sample struct {
	node, path, cluster string
	ts                  time.Time
}

func (s sample) String() string {
	return fmt.Sprintf("%s/%s%s@%s", s.cluster, s.node, s.path, s.ts.Format("15:04:05.000"))
}

// newest asks for the timestamp of each node's newest `up` sample at `at`.
func newest(t *testing.T, base string, at time.Time) ([]sample, error) {
	a, err := thanostest.Query(t, base, `timestamp(up{job="kubeedge"})`, at, nil)
	if err != nil {
		return nil, err
	}
	if len(a.Warnings) > 0 {
		return nil, fmt.Errorf("warnings: %s", strings.Join(a.Warnings, "; "))
	}
	var out []sample
	for _, s := range a.Vector {
		out = append(out, sample{node: string(s.Metric["node"]), path: string(s.Metric["metrics_path"]), cluster: string(s.Metric["cluster"]),
			ts: model.Time(math.Round(float64(s.Value) * 1000)).Time()})
	}
	slices.SortFunc(out, func(a, b sample) int { return strings.Compare(a.node+a.path, b.node+b.path) })
	return out, nil
}
