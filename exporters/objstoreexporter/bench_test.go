package objstoreexporter

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/bucket"
)

const benchSeries = 1000 // per scrape: 500 counters, 500 gauges

// benchBatch is one scrape of an edge node; set(i) rewrites its timestamps and values in place.
type benchBatch struct {
	md       pmetric.Metrics
	counters pmetric.NumberDataPointSlice
	gauges   pmetric.NumberDataPointSlice
}

func newBenchBatch() *benchBatch {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "kubelet")
	rm.Resource().Attributes().PutStr("service.instance.id", "edge-1:10350")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	c := ms.AppendEmpty()
	c.SetName("container_cpu_usage_seconds_total")
	c.SetEmptySum().SetIsMonotonic(true)
	c.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	g := ms.AppendEmpty()
	g.SetName("container_memory_working_set_bytes")
	g.SetEmptyGauge()
	for i := range benchSeries / 2 {
		for _, dps := range []pmetric.NumberDataPointSlice{c.Sum().DataPoints(), g.Gauge().DataPoints()} {
			dp := dps.AppendEmpty()
			dp.Attributes().PutStr("namespace", "ns-"+strconv.Itoa(i%10))
			dp.Attributes().PutStr("pod", "pod-"+strconv.Itoa(i))
			dp.Attributes().PutStr("container", "app")
		}
	}
	return &benchBatch{md: md, counters: c.Sum().DataPoints(), gauges: g.Gauge().DataPoints()}
}

// benchStart leaves 60 days of 15s scrapes before the exporter's future-skew limit.
var benchStart = time.Now().Add(-60 * 24 * time.Hour).Truncate(2 * time.Hour).UnixMilli()

func (b *benchBatch) set(i int) {
	ts := pcommon.Timestamp((benchStart + int64(i)*15_000) * 1e6)
	for j := 0; j < b.counters.Len(); j++ {
		c := b.counters.At(j)
		c.SetTimestamp(ts)
		c.SetDoubleValue(float64(i*(j%7+1)) * 0.013)
		g := b.gauges.At(j)
		g.SetTimestamp(ts)
		g.SetDoubleValue(math.Floor(1e8 + 1e6*math.Sin(float64(i+j)/40)))
	}
}

// BenchmarkAppend reports samples/s appended through the exporter (one op = one scrape of 1000
// series, 15s apart) and, once a 2h block is uploaded, bytes per sample in the bucket.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	cfg := testConfig(b.TempDir())
	e := newTestExporter(b, cfg, nil, nil)
	require.NoError(b, e.Start(ctx, componenttest.NewNopHost()))
	defer func() { _ = e.Shutdown(ctx) }()
	batch := newBenchBatch()
	batch.set(0)
	require.NoError(b, e.push(ctx, batch.md)) // series created outside the timed loop

	i := 1
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		batch.set(i)
		if err := e.push(ctx, batch.md); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64((i-1)*benchSeries)/b.Elapsed().Seconds(), "samples/s")

	// Untimed: fill the head past 3h so that tsdb cuts a full 2h block, then measure it.
	b.StopTimer()
	for ; i <= 3*3600/15+1; i++ {
		batch.set(i)
		require.NoError(b, e.push(ctx, batch.md))
	}
	bkt := openBucket(b, cfg)
	var metas []*bucket.Meta
	require.Eventually(b, func() bool {
		var err error
		metas, err = bucket.Blocks(ctx, bkt)
		return err == nil && len(metas) > 0
	}, time.Minute, 20*time.Millisecond)
	var size int64
	var samples uint64
	for _, m := range metas {
		require.NoError(b, bkt.Iter(ctx, m.ULID.String(), func(name string) error {
			attrs, err := bkt.Attributes(ctx, name)
			size += attrs.Size
			return err
		}, objstore.WithRecursiveIter()))
		samples += m.Stats.NumSamples
	}
	b.ReportMetric(float64(size)/float64(samples), "bucket-bytes/sample")
}
