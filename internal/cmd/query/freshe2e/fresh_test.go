// Package freshe2e runs edgesim → edgetelcol (objstore exporter at the default 2h blocks, with
// head_api on) as real processes and checks issue #18's promise on freshness: the newest
// `up{job="kubeedge"}` sample, scraped less than one interval ago, is answered both by
// edgetel-query (bucket + the collector's head) and by the real Thanos Query fanned out to a
// Thanos sidecar beside the collector and a Thanos store gateway over the bucket; and a range
// that spans uploaded blocks and the head (the collector ran with one-minute blocks first, then
// restarted at the default) returns each sample once from both.
//
// The binaries come from $EDGETEL_BIN (`make test` builds them into ./bin), else the test builds
// them from this tree; Thanos from $EDGETEL_THANOS (skipped when unset).
package freshe2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/testprog"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// interval is the scrape interval (and edgesim's step).
const interval = 5 * time.Second

var commands = []string{"edgesim", "edgetelcol", "edgetel-query"}

// start runs a command until the test ends or stop is called (SIGINT, then wait); its output
// goes to <dir>/<name>.log, shown when the test fails.
func start(t *testing.T, dir, name string, args ...string) (stop func()) {
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
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			_ = cmd.Wait()
			log.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				t.Logf("%s log:\n%s", name, tailOf(string(out), 3000))
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
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
    external_labels: {cluster: e2e}%[6]s
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
	bin := testprog.Commands(t, commands...)
	dir := t.TempDir()
	cloudcore, head, health, query := thanostest.FreeAddr(t), thanostest.FreeAddr(t), thanostest.FreeAddr(t), thanostest.FreeAddr(t)

	start(t, dir, "edgesim", filepath.Join(bin, "edgesim"), "--nodes=3", "--listen="+cloudcore, "--admin-listen=",
		"--fleet-file="+filepath.Join(dir, "fleet.json"), "--tls-dir="+filepath.Join(dir, "tls"),
		"--step="+interval.String(), "--log-stats=0")
	require.Eventually(t, func() bool {
		st, err := os.Stat(filepath.Join(dir, "fleet.json"))
		return err == nil && st.Size() > 0
	}, time.Minute, 100*time.Millisecond, "edgesim writes its fleet")

	// First one-minute blocks until one is uploaded, then a restart with the default 2h blocks
	// on the same directory: the uploaded blocks stay on the collector's disk (local_retention),
	// so the head API serves them as the bucket does, and the head goes on from there.
	writeConf := func(extra string) string {
		conf := filepath.Join(dir, "collector.yaml")
		require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, collectorConfig, interval, dir, cloudcore, head, health, extra), 0o600))
		return conf
	}
	bucketDir := filepath.Join(dir, "objstore", "bucket")
	stopFirst := start(t, dir, "edgetelcol-1m", filepath.Join(bin, "edgetelcol"), "--config="+writeConf("\n    block_duration: 1m"))
	// The first block may hold only edgesim's timestamped samples from before the first scrape:
	// the second holds `up` too.
	var uploaded []string
	require.Eventually(t, func() bool {
		uploaded, _ = filepath.Glob(filepath.Join(bucketDir, "*", "meta.json"))
		return len(uploaded) > 1
	}, 5*time.Minute, time.Second, "edgetelcol with one-minute blocks uploads two")
	stopFirst()
	start(t, dir, "edgetelcol", filepath.Join(bin, "edgetelcol"), "--config="+writeConf(""))
	testprog.WaitOK(t, "edgetelcol's head API", "http://"+head+"/-/ready")

	start(t, dir, "edgetel-query", filepath.Join(bin, "edgetel-query"), "--listen="+query, "--bucket-dir="+bucketDir,
		"--cache-dir="+filepath.Join(dir, "query-cache"), "--head.endpoint=http://"+head)
	testprog.WaitOK(t, "edgetel-query", "http://"+query+"/-/ready")

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

	// From the first scrape to the last, across the uploaded blocks (also still in the
	// collector's local TSDB) and the head: every sample once, the same from both.
	uploadedEnd := lastBlockEnd(t, uploaded)
	window := time.Since(uploadedEnd.Add(-time.Minute)).Round(time.Second)
	raw := map[string]model.Matrix{}
	for name, base := range map[string]string{"edgetel-query": "http://" + query, "thanos": "http://" + thanos.HTTP} {
		a, err := thanostest.Query(t, base, fmt.Sprintf(`up{job="kubeedge"}[%s]`, model.Duration(window)), time.Now(), nil)
		require.NoError(t, err)
		require.Len(t, a.Matrix, 9, name)
		for _, s := range a.Matrix {
			require.Less(t, s.Values[0].Timestamp.Time(), uploadedEnd, "%s: %s starts in an uploaded block", name, s.Metric)
			for i := 1; i < len(s.Values); i++ {
				require.Greater(t, s.Values[i].Timestamp, s.Values[i-1].Timestamp, "%s: %s: each sample once", name, s.Metric)
			}
			// One scrape per interval, plus the one the restart starts with and jitter.
			require.LessOrEqual(t, len(s.Values), int(window/interval)+3, "%s: %s: each sample once", name, s.Metric)
		}
		raw[name] = a.Matrix
	}
	assertSameSamples(t, raw["edgetel-query"], raw["thanos"])
}

// lastBlockEnd is the end of the newest uploaded block.
func lastBlockEnd(t *testing.T, metas []string) time.Time {
	t.Helper()
	end := int64(math.MinInt64)
	for _, p := range metas {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		var m struct {
			MaxTime int64 `json:"maxTime"`
		}
		require.NoError(t, json.Unmarshal(b, &m))
		end = max(end, m.MaxTime)
	}
	return time.UnixMilli(end)
}

// assertSameSamples compares two answers of the same range selector taken a moment apart: the
// same series, and the same samples over the span both cover.
func assertSameSamples(t *testing.T, a, b model.Matrix) {
	t.Helper()
	index := func(m model.Matrix) map[string]map[model.Time]model.SampleValue {
		out := map[string]map[model.Time]model.SampleValue{}
		for _, s := range m {
			out[s.Metric.String()] = map[model.Time]model.SampleValue{}
			for _, v := range s.Values {
				out[s.Metric.String()][v.Timestamp] = v.Value
			}
		}
		return out
	}
	ia, ib := index(a), index(b)
	require.ElementsMatch(t, slices.Collect(maps.Keys(ia)), slices.Collect(maps.Keys(ib)))
	for k, sa := range ia {
		sb := ib[k]
		lo := max(slices.Min(slices.Collect(maps.Keys(sa))), slices.Min(slices.Collect(maps.Keys(sb))))
		hi := min(slices.Max(slices.Collect(maps.Keys(sa))), slices.Max(slices.Collect(maps.Keys(sb))))
		for ts, v := range sa {
			if ts >= lo && ts <= hi {
				assert.Equal(t, v, sb[ts], "%s at %s", k, ts)
			}
		}
		for ts := range sb {
			if ts >= lo && ts <= hi {
				_, ok := sa[ts]
				assert.True(t, ok, "%s at %s only in one answer", k, ts)
			}
		}
	}
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
