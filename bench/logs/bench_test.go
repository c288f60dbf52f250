package logs

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
)

// debugExporter counts and forgets: the benchmark measures the receiver's side, not a store's.
const debugExporter = `  debug:
    verbosity: basic
    sampling_initial: 1
    sampling_thereafter: 1000000`

// BenchmarkFollow1000Streams runs edgetelcol as a process following 1,000 log streams (250
// nodes × 2 pods × 2 containers, stdout and stderr interleaved) through edgesim's cloudcore
// endpoint and reports, from /proc, the collector's CPU per line delivered and its resident
// memory per followed stream (against the same collector following none). One measurement per
// run: use -benchtime 1x.
func BenchmarkFollow1000Streams(b *testing.B) {
	const (
		benchNodes = 250
		streams    = benchNodes * 2 * 2
		rate       = 20 // lines per second per container
		window     = 30 * time.Second
	)
	e := &env{t: b, dir: b.TempDir()}
	collector(b)
	sim, err := edgesim.New(edgesim.Config{Nodes: benchNodes, Seed: 3, Listen: "127.0.0.1:0", TLSDir: filepath.Join(e.dir, "tls"),
		FleetFile: filepath.Join(e.dir, "fleet.json"), ManualStep: true,
		Logs: edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 2, Rate: rate, PollInterval: 200 * time.Millisecond}})
	require.NoError(b, err)
	require.NoError(b, sim.Start(context.Background()))
	defer sim.Close()
	e.sim = sim

	run := func(namespaces []string, open float64) (lines, cpu float64, rss int64) {
		e.writeConfig(namespaces, debugExporter, false)
		p, err := harness.Start("edgetelcol", e.dir, collectorBin, "--config", e.config)
		require.NoError(b, err)
		defer p.Stop(30 * time.Second)
		require.Eventually(b, func() bool {
			m := e.metrics()
			_, up := m["otelcol_process_cpu_seconds"]
			return up && m["otelcol_receiver_kubeedge_log_streams_open"] == open
		}, 2*time.Minute, 200*time.Millisecond)
		time.Sleep(5 * time.Second) // the backlog since the sim started is read
		m0, s0 := e.metrics(), must(harness.ReadProc(p.Pid()))
		time.Sleep(window)
		m1, s1 := e.metrics(), must(harness.ReadProc(p.Pid()))
		return m1["otelcol_receiver_kubeedge_log_lines"] - m0["otelcol_receiver_kubeedge_log_lines"], s1.CPUSeconds - s0.CPUSeconds, s1.RSS
	}
	b.ResetTimer()
	for range b.N {
		_, _, idle := run([]string{"nothing-here"}, 0)
		lines, cpu, rss := run([]string{"edge-apps"}, streams)
		b.ReportMetric(lines/window.Seconds(), "lines/s")
		b.ReportMetric(lines/cpu, "lines/cpu-s")
		b.ReportMetric(float64(rss-idle)/streams, "rss-B/stream")
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
