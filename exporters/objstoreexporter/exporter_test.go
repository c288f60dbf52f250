package objstoreexporter

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgetel/edgetel/exporters/objstoreexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/bucket"
)

const hour = int64(time.Hour / time.Millisecond)

// TestKnownDataSetThroughExporter writes 7h of data through the exporter built by its factory:
// tsdb cuts the 2h blocks [0,2h) and [2h,4h) (the rest stays in the head, in the WAL), the exporter
// uploads them, and the bucket holds exactly the samples written before 4h.
func TestKnownDataSetThroughExporter(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	exp, err := NewFactory().CreateMetrics(ctx, set, cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, componenttest.NewNopHost()))

	ds := newDataset(5, t0, t0+7*hour)
	for _, md := range ds.batches {
		require.NoError(t, exp.ConsumeMetrics(ctx, md))
	}
	bkt := openBucket(t, cfg)
	metas := waitBlocks(t, bkt, 2)
	require.NoError(t, exp.Shutdown(ctx))

	for i, m := range metas {
		assert.Equal(t, t0+int64(i)*2*hour, m.MinTime)
		assert.Equal(t, t0+int64(i+1)*2*hour, m.MaxTime)
		assert.Equal(t, cfg.ExternalLabels, m.Thanos.Labels)
		assert.Equal(t, int64(0), m.Thanos.Downsample.Resolution)
		assert.Equal(t, bucket.SourceSidecar, m.Thanos.Source)
		assert.Equal(t, 1, m.Compaction.Level)
		assert.Equal(t, []string{"000001"}, m.Thanos.SegmentFiles)
	}

	// Uploaded blocks are recorded and stay local for local_retention (6h).
	st, err := loadState(filepath.Join(cfg.Directory, stateFilename))
	require.NoError(t, err)
	assert.ElementsMatch(t, []ulidT{metas[0].ULID, metas[1].ULID}, st.Uploaded)
	assert.ElementsMatch(t, []string{metas[0].ULID.String(), metas[1].ULID.String()}, blockDirs(t, filepath.Join(cfg.Directory, "tsdb")))

	dir, _ := downloadAll(t, bkt)
	want := ds.before(t0 + 4*hour)
	db := openReadOnly(t, dir)
	got := readSamples(t, db, t0, t0+4*hour)
	assertSameSamples(t, want, got, "the bucket holds exactly the samples written before the last cut")

	t.Run("promql", func(t *testing.T) {
		at := t0 + hour
		v := instant(t, db, `edge_temp_celsius{sensor="3"}`, at)
		assert.Equal(t, map[string]float64{`{__name__="edge_temp_celsius", instance="edge-1:10350", job="kubelet", sensor="3"}`: 300 + 120*0.5}, v)
		rates := instant(t, db, `sum by (sensor) (rate(edge_packets_total[5m]))`, at)
		require.Len(t, rates, 5)
		for _, r := range rates {
			assert.InDelta(t, 0.5, r, 1e-9) // 15 packets per 30s scrape
		}
		q := instant(t, db, `histogram_quantile(0.5, sum by (le) (rate(edge_latency_seconds_bucket[5m])))`, at)
		require.Len(t, q, 1)
		for _, x := range q {
			assert.InDelta(t, 0.1+(1-0.1)*(2.0-1)/2, x, 1e-9) // median falls halfway into (0.1, 1]
		}
		// The stale marker ends sensor 0's gauge at once, not after the 5m lookback.
		assert.Empty(t, instant(t, db, `edge_temp_celsius{sensor="0"}`, staleAt+10))
		assert.Len(t, instant(t, db, `edge_temp_celsius{sensor="0"}`, staleAt+step.Milliseconds()), 1)
	})

	t.Run("prometheus server", func(t *testing.T) {
		query := prometheusQuery(t, dir)
		assert.Equal(t, map[string]string{"3": "360"}, query(`edge_temp_celsius{sensor="3"}`, t0+hour))
		assert.Equal(t, map[string]string{"0": "0.5", "1": "0.5", "2": "0.5", "3": "0.5", "4": "0.5"},
			query(`sum by (sensor) (rate(edge_packets_total[5m]))`, t0+3*hour))
	})

	t.Run("self-metrics", func(t *testing.T) {
		assertCounter(t, tel, "otelcol_exporter_objstore_blocks_cut", 2)
		assertCounter(t, tel, "otelcol_exporter_objstore_blocks_uploaded", 2)
		assertCounter(t, tel, "otelcol_exporter_objstore_samples_appended", int64(len(ds.expected)))
	})

	t.Run("promtool", func(t *testing.T) {
		bin := promtool(t)
		ids := blockDirs(t, dir)
		require.Len(t, ids, 2)
		list := runPromtool(t, bin, "tsdb", "list", dir)
		for _, id := range ids {
			assert.Contains(t, list, id)
			out := runPromtool(t, bin, "tsdb", "analyze", dir, id)
			assert.Contains(t, out, "Block ID: "+id)
			assert.Contains(t, out, "Total Series: 35")
		}
		dump := lines(runPromtool(t, bin, "tsdb", "dump", "--sandbox-dir-root", t.TempDir(), dir))
		assertSameSamples(t, want, dump, "promtool tsdb dump prints exactly the samples written")
	})
}

func assertCounter(t *testing.T, tel *componenttest.Telemetry, name string, want int64) {
	t.Helper()
	assert.Equal(t, want, counterValue(t, tel, name, ""))
}

// counterValue sums a counter's points, optionally only those with reason=<reason>.
func counterValue(t *testing.T, tel *componenttest.Telemetry, name, reason string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	require.NoError(t, err, name)
	var n int64
	for _, dp := range sumPoints(m) {
		if r, ok := dp.Attributes.Value("reason"); reason != "" && (!ok || r.AsString() != reason) {
			continue
		}
		n += dp.Value
	}
	return n
}

// TestOutOfOrder: an edge node's late backlog within out_of_order_window is stored, lands in a
// block of its own next to the one already uploaded, and is queryable from the bucket; older
// samples are dropped and counted.
func TestOutOfOrder(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.OutOfOrderWindow = 4 * time.Hour
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	e := newTestExporter(t, cfg, tel, nil)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })
	bkt := openBucket(t, cfg)

	const minute = int64(time.Minute / time.Millisecond)
	lateFrom, oldFrom := t0+3*hour+30*minute, t0+2*hour+30*minute
	// In-order data with two gaps: one filled late within the window, one too old to fill.
	in := merge(newDataset(1, t0, oldFrom), newDataset(1, oldFrom+minute, lateFrom), newDataset(1, lateFrom+5*minute, t0+7*hour))
	for _, md := range in.batches {
		require.NoError(t, e.push(ctx, md))
	}
	waitBlocks(t, bkt, 2) // [0,2h) and [2h,4h) uploaded; head holds [4h,7h)

	late := newDataset(1, lateFrom, lateFrom+5*minute) // within 4h of the newest sample (7h): kept
	tooOld := newDataset(1, oldFrom, oldFrom+minute)   // older than 7h-4h: dropped
	for _, md := range append(late.batches, tooOld.batches...) {
		require.NoError(t, e.push(ctx, md))
	}
	tooOldSamples := int64(len(tooOld.expected))
	assert.Equal(t, tooOldSamples, counterValue(t, tel, "otelcol_exporter_objstore_samples_dropped", "too_old"))

	// Queryable locally at once.
	lateTS := lateFrom
	local := instant(t, e.db, `edge_temp_celsius`, lateTS)
	assert.Equal(t, []float64{late.expected[0].v}, values(local))

	// More in-order data cuts [4h,6h) and, with it, the out-of-order block for [2h,4h).
	more := newDataset(1, t0+7*hour, t0+9*hour)
	for _, md := range more.batches {
		require.NoError(t, e.push(ctx, md))
	}
	metas := waitBlocks(t, bkt, 4)
	var ooo *bucket.Meta
	for _, m := range metas {
		if slices.Contains(m.Compaction.Hints, "from-out-of-order") {
			ooo = m
		}
	}
	require.NotNil(t, ooo, "an out-of-order block was uploaded")
	assert.Equal(t, t0+2*hour, ooo.MinTime)
	assert.Equal(t, uint64(len(late.expected)), ooo.Stats.NumSamples)
	assert.Equal(t, cfg.ExternalLabels, ooo.Thanos.Labels)

	dir, _ := downloadAll(t, bkt)
	db := openReadOnly(t, dir)
	assert.Equal(t, []float64{late.expected[0].v}, values(instant(t, db, `edge_temp_celsius`, lateTS)))
	got := readSamples(t, db, t0, t0+6*hour)
	want := append(in.before(t0+6*hour), late.before(t0+6*hour)...)
	assertSameSamples(t, want, got, "bucket after the late backlog")
}

func values(m map[string]float64) []float64 {
	var out []float64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestShutdownWithoutStart(t *testing.T) {
	e := newTestExporter(t, testConfig(t.TempDir()), nil, nil)
	require.NoError(t, e.Shutdown(context.Background()))
}

func TestStartFailsOnBadBucket(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Bucket = map[string]any{"type": "FILESYSTEM", "config": map[string]any{}}
	e := newTestExporter(t, cfg, nil, nil)
	err := e.Start(context.Background(), componenttest.NewNopHost())
	require.ErrorContains(t, err, "missing directory")
	require.NoError(t, e.Shutdown(context.Background()))
}

func TestPushBeforeStartFails(t *testing.T) {
	e := newTestExporter(t, testConfig(t.TempDir()), nil, nil)
	err := e.push(context.Background(), newDataset(1, t0, t0+1).batches[0])
	require.ErrorContains(t, err, "not started")
}

func TestUploadStateSurvivesCorruption(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, stateFilename)
	require.NoError(t, writeFile(path, "{not json"))
	st, err := loadState(path)
	require.NoError(t, err)
	assert.Empty(t, st.Uploaded)
}

// failingBucket fails every upload until healed.
type failingBucket struct {
	objstore.Bucket
	mu     sync.Mutex
	failed int
	healed bool
	n      map[string]int
}

func (b *failingBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.healed {
		b.failed++
		return errors.New("bucket unreachable")
	}
	b.n[name]++
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *failingBucket) failures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed
}

// TestUploadRetriesUntilTheBucketIsBack: a bucket outage keeps blocks local (counted as
// failures, visible as upload lag), and they are uploaded once when it comes back.
func TestUploadRetriesUntilTheBucketIsBack(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.LocalRetention = 0 // delete right after upload, never before
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	fb := &failingBucket{n: map[string]int{}}
	e := newTestExporter(t, cfg, tel, func(b objstore.Bucket) objstore.Bucket { fb.Bucket = b; return fb })
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })
	for _, md := range newDataset(1, t0, t0+7*hour).batches {
		require.NoError(t, e.push(ctx, md))
	}
	// ~2s of failures: the tsdb reload loop (1s here) has applied retention at least once.
	require.Eventually(t, func() bool { return fb.failures() >= 12 }, 60*time.Second, 10*time.Millisecond)
	assert.GreaterOrEqual(t, counterValue(t, tel, "otelcol_exporter_objstore_upload_failures", ""), int64(3))
	m, err := tel.GetMetric("otelcol_exporter_objstore_upload_lag")
	require.NoError(t, err)
	lag := m.Data.(metricdata.Gauge[float64]).DataPoints[0].Value
	assert.Greater(t, lag, 0.0, "upload lag reports the waiting block")
	// Pending blocks stay on local disk however old.
	assert.Len(t, e.db.Blocks(), 2)

	fb.mu.Lock()
	fb.healed = true
	fb.mu.Unlock()
	metas := waitBlocks(t, openBucket(t, cfg), 2)
	for _, m := range metas {
		fb.mu.Lock()
		assert.Equal(t, 1, fb.n[m.ULID.String()+"/meta.json"])
		fb.mu.Unlock()
	}
	// local_retention 0: uploaded blocks leave local disk at the next reload.
	require.Eventually(t, func() bool { return len(e.db.Blocks()) == 0 }, 30*time.Second, 20*time.Millisecond)
	m, err = tel.GetMetric("otelcol_exporter_objstore_upload_lag")
	require.NoError(t, err)
	assert.Equal(t, 0.0, m.Data.(metricdata.Gauge[float64]).DataPoints[0].Value)
}

// TestUnsupportedPointsAreCountedAndTheRestStored: a batch mixing a delta sum (no Prometheus
// form) and a sample an hour ahead of the clock with good data stores the good data and counts
// the rest.
func TestUnsupportedPointsAreCountedAndTheRestStored(t *testing.T) {
	ctx := context.Background()
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	e := newTestExporter(t, testConfig(t.TempDir()), tel, nil)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })

	ds := newDataset(1, t0, t0+step.Milliseconds())
	md := ds.batches[0]
	d := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	d.SetName("edge_bytes")
	d.SetEmptySum().SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	d.Sum().DataPoints().AppendEmpty().SetIntValue(5)
	f := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	f.SetName("edge_clock_skewed")
	fp := f.SetEmptyGauge().DataPoints().AppendEmpty()
	fp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now().Add(time.Hour)))
	fp.SetDoubleValue(1)
	require.NoError(t, e.push(ctx, md))

	assert.Equal(t, int64(1), counterValue(t, tel, "otelcol_exporter_objstore_samples_dropped", "unsupported"))
	assert.Equal(t, int64(1), counterValue(t, tel, "otelcol_exporter_objstore_samples_dropped", "clock_skew"))
	assertSameSamples(t, ds.before(t0+hour), readSamples(t, e.db, t0, t0+hour), "local tsdb")
}

// Shutdown releases what Start acquired: the gauges' callback is unregistered (a stopped exporter
// reports no head series) and the closed head is let go; a second Start registers again and
// finds the data the first one wrote. goleak (TestMain) checks the goroutines.
func TestStartStopStartReleasesTelemetryAndHead(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	e := newTestExporter(t, cfg, tel, nil)
	headSeries := func() (int64, bool) {
		m, err := tel.GetMetric("otelcol_exporter_objstore_head_series")
		if err != nil {
			return 0, false
		}
		points := m.Data.(metricdata.Gauge[int64]).DataPoints
		return points[0].Value, len(points) == 1
	}

	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	require.NoError(t, e.push(ctx, newDataset(3, t0, t0+hour).batches[0]))
	series, ok := headSeries()
	require.True(t, ok)
	assert.Positive(t, series)

	require.NoError(t, e.Shutdown(ctx))
	_, ok = headSeries()
	assert.False(t, ok, "no callback left after Shutdown")
	assert.Nil(t, e.tel.head, "the closed head is not referenced")
	assert.Nil(t, e.tel.registration)

	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	n, ok := headSeries()
	require.True(t, ok)
	assert.Zero(t, n, "the previous head is replayed aside, not into the live head")
	<-e.replayDone
	assert.Len(t, e.db.Blocks(), 1, "the previous head, written out as a block")
	require.NoError(t, e.Shutdown(ctx))
}

// TestFlushOnShutdownLeavesNothingBehind: with flush_on_shutdown a stopping exporter writes its
// whole head out as blocks and uploads them, so the bucket holds every sample (a shard removed
// for good leaves nothing on its volume), and the next start has no head to write out.
func TestFlushOnShutdownLeavesNothingBehind(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.FlushOnShutdown = true
	e := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	ds := newDataset(2, t0, t0+3*hour) // a block range and a half: one cut block would be due later
	for _, md := range ds.batches {
		require.NoError(t, e.push(ctx, md))
	}
	stopCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, e.Shutdown(stopCtx))

	bkt := openBucket(t, cfg)
	bdir, _ := downloadAll(t, bkt)
	assertSameSamples(t, ds.before(t0+3*hour), readSamples(t, openReadOnly(t, bdir), t0, t0+3*hour), "the bucket after a flushing shutdown")
	before := bucketBlocks(t, bkt)

	// The next start finds the WAL's samples all in blocks: it writes out and uploads nothing.
	cfg.FlushOnShutdown = false
	e2 := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e2.Start(ctx, componenttest.NewNopHost()))
	if e2.replayDone != nil {
		select {
		case <-e2.replayDone:
		case <-time.After(time.Minute):
			t.Fatal("the restart's write-out did not end")
		}
	}
	require.NoError(t, e2.sync(ctx))
	require.NoError(t, e2.Shutdown(ctx))
	assert.Equal(t, before, bucketBlocks(t, bkt), "no block written out or uploaded twice")
}

// bucketBlocks lists the block directories in bkt.
func bucketBlocks(t *testing.T, bkt objstore.Bucket) []string {
	t.Helper()
	var out []string
	require.NoError(t, bkt.Iter(context.Background(), "", func(name string) error {
		out = append(out, name)
		return nil
	}))
	return out
}
