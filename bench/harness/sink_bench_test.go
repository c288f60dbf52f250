package harness

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// benchRequests are remote-write requests as a collector sends a thousand-node fleet's
// scrapes: series of cadvisor's shape (a dozen labels, one sample each), nodes*perNode series
// cut into requests of 2,000, at timestamp ts.
func benchRequests(tb testing.TB, nodes, perNode int, ts int64) [][]byte {
	var out [][]byte
	req := &prompb.WriteRequest{}
	flush := func() {
		raw, err := req.Marshal()
		require.NoError(tb, err)
		out = append(out, raw)
		req.Timeseries = req.Timeseries[:0]
	}
	for n := range nodes {
		for i := range perNode {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: []prompb.Label{
				{Name: "__name__", Value: fmt.Sprintf("container_metric_%d", i%40)},
				{Name: "container", Value: fmt.Sprintf("c%d", i/40)},
				{Name: "cpu", Value: "total"},
				{Name: "id", Value: fmt.Sprintf("/kubepods/burstable/pod%08d/%d", n, i/40)},
				{Name: "image", Value: "registry.example/app:1.2.3"},
				{Name: "instance", Value: fmt.Sprintf("edge-%05d:10350", n)},
				{Name: "job", Value: "kubeedge"},
				{Name: "metrics_path", Value: "/metrics/cadvisor"},
				{Name: "name", Value: fmt.Sprintf("k8s_c%d_pod-%d", i/40, n)},
				{Name: "namespace", Value: "default"},
				{Name: "node", Value: fmt.Sprintf("edge-%05d", n)},
				{Name: "pod", Value: fmt.Sprintf("pod-%d", i/40)},
			}, Samples: []prompb.Sample{{Value: float64(i), Timestamp: ts}}})
			if len(req.Timeseries) == 2000 {
				flush()
			}
		}
	}
	if len(req.Timeseries) > 0 {
		flush()
	}
	return out
}

// BenchmarkSinkCount is the sink's cost per sample received with pair tracking on: 200,000
// series (200 nodes), each op one scrape round of all of them at a new timestamp. It reports
// ns/sample and the heap the sink holds per (series, timestamp) pair and per series.
func BenchmarkSinkCount(b *testing.B) {
	const nodes, perNode = 200, 1000
	rounds := make([][][]byte, 8)
	now := time.Now().UnixMilli()
	for r := range rounds {
		rounds[r] = benchRequests(b, nodes, perNode, now+int64(r)*30_000)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newSinkState(true)
	b.ResetTimer()
	for i := range b.N {
		for _, raw := range rounds[i%len(rounds)] {
			if err := s.count(raw); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	pairs := float64(min(b.N, len(rounds)) * nodes * perNode)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nodes*perNode), "ns/sample")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/pairs, "heapB/pair")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(nodes*perNode), "heapB/series")
	runtime.KeepAlive(s)
	runtime.KeepAlive(rounds)
}
