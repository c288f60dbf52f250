package objstoreexporter

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/testing/edgesim/captures"
)

// BenchmarkRetainedPerSeries reports the heap the exporter keeps per active series once the
// kubelet captures of memNodes nodes have been appended for a few rounds: the local TSDB head
// (series, label sets, postings, head chunks) and the exporter's series cache. It is what the
// chart's default pipeline holds per series beyond the receiver, and BENCHMARKS.md's sizing
// rests on it.
func BenchmarkRetainedPerSeries(b *testing.B) {
	const memNodes, rounds = 20, 4
	var scrapes [][]byte
	for _, sc := range kubeletScrapes {
		data, err := captures.Read(sc.file)
		require.NoError(b, err)
		scrapes = append(scrapes, data)
	}
	ctx := context.Background()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e := newTestExporter(b, testConfig(b.TempDir()), nil, nil)
		require.NoError(b, e.Start(ctx, componenttest.NewNopHost()))
		for r := range rounds {
			for n := range memNodes {
				for i, sc := range kubeletScrapes {
					require.NoError(b, e.push(ctx, nodeScrape(b, scrapes[i], sc, n, t0+int64(r)*30_000)))
				}
			}
		}
		series := e.seriesCached()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(series), "B/series")
		b.ReportMetric(float64(series), "series")
		require.NoError(b, e.Shutdown(ctx))
	}
}

// nodeScrape is one endpoint's scrape as node n's.
func nodeScrape(tb testing.TB, data []byte, sc scrape, n int, ts int64) pmetric.Metrics {
	md := scrapeMetrics(tb, data, sc, ts)
	attrs := md.ResourceMetrics().At(0).Resource().Attributes()
	name := fmt.Sprintf("edge-%05d", n)
	attrs.PutStr("node", name)
	attrs.PutStr("k8s.node.name", name)
	attrs.PutStr("service.instance.id", name+":10350")
	return md
}
