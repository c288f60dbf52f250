package query

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/exporters/objstoreexporter"
	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// compactionQueries are answered before and after `thanos compact`; each exercises a different
// reading of the raw samples (selection, sample counts, rates, aggregation across series).
var compactionQueries = []string{
	`up{job="kubeedge"}`,
	`count_over_time(up{job="kubeedge"}[1h])`,
	`sum by (node) (rate(kubelet_requests_total[15m]))`,
	`max_over_time(kubelet_requests_total[2h])`,
	`count(up == 1)`,
}

// nodeMetrics is one scrape per node: `up` and a counter that grows by the node's index + 1.
func nodeMetrics(ts time.Time, k int, nodes ...string) pmetric.Metrics {
	md := upMetrics(ts, nodes...)
	for i := range md.ResourceMetrics().Len() {
		ms := md.ResourceMetrics().At(i).ScopeMetrics().At(0).Metrics()
		c := ms.AppendEmpty()
		c.SetName("kubelet_requests_total")
		c.SetEmptySum().SetIsMonotonic(true)
		c.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := c.Sum().DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetDoubleValue(float64(k * (i + 1)))
	}
	return md
}

// exporterBucket writes 58 hours of data for three nodes through the real objstore exporter
// (default 2h blocks), plus late samples of a fourth node that land in an out-of-order block
// overlapping an uploaded one. It returns the bucket directory and the data's start.
func exporterBucket(t *testing.T) (string, time.Time) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := objstoreexporter.NewFactory()
	cfg := f.CreateDefaultConfig().(*objstoreexporter.Config)
	cfg.Directory = dir
	cfg.ExternalLabels = map[string]string{"cluster": "compact"}
	cfg.UploadInterval = 100 * time.Millisecond
	exp, err := f.CreateMetrics(ctx, exportertest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, componenttest.NewNopHost()))

	// 48h-aligned (Go's zero time is a multiple of 48h before the Unix epoch), so Thanos'
	// compactor can make one 2-day block of the first 48 hours and downsample it.
	t0 := time.Now().Add(-100 * time.Hour).Truncate(48 * time.Hour)
	push := func(from, to time.Duration, nodes ...string) {
		for d := from; d < to; d += time.Minute {
			require.NoError(t, exp.ConsumeMetrics(ctx, nodeMetrics(t0.Add(d), int(d/time.Minute), nodes...)))
		}
	}
	push(0, 56*time.Hour, "edge-a", "edge-b", "edge-c")
	push(50*time.Hour, 51*time.Hour, "edge-late") // out of order: the head is at 56h
	push(56*time.Hour, 58*time.Hour, "edge-a", "edge-b", "edge-c")
	bucketDir := filepath.Join(dir, bucket.DefaultDirName)
	bkt, err := bucket.New(ctx, &bucket.Config{Type: "FILESYSTEM", Config: map[string]string{"directory": bucketDir}}, nil)
	require.NoError(t, err)
	// Blocks [0, 56h) in order, and the late hour in its own block.
	require.Eventually(t, func() bool {
		metas, err := bucket.Blocks(ctx, bkt)
		require.NoError(t, err)
		return len(metas) >= 29
	}, 2*time.Minute, 100*time.Millisecond, "the exporter ships 28 in-order blocks and an out-of-order one")
	require.NoError(t, exp.Shutdown(ctx))
	return bucketDir, t0
}

// answers runs every compaction query as a range query over the data at raw resolution.
func answers(t *testing.T, base string, t0 time.Time, extra url.Values) map[string]model.Matrix {
	t.Helper()
	out := map[string]model.Matrix{}
	for _, q := range compactionQueries {
		a, err := thanostest.QueryRange(t, base, q, t0, t0.Add(56*time.Hour), 10*time.Minute, extra)
		require.NoError(t, err, q)
		require.NotEmpty(t, a.Matrix, q)
		out[q] = a.Matrix
	}
	return out
}

// syncedQuery selects every sample of the bucket: a reader that has not synced every block yet
// returns fewer. Thanos' store gateway is ready only after its first full sync.
const syncedQuery = `{__name__=~".+"}[60h]`

func sampleCount(t *testing.T, base string, at time.Time, extra url.Values) int {
	t.Helper()
	a, err := thanostest.Query(t, base, syncedQuery, at, extra)
	require.NoError(t, err)
	n := 0
	for _, s := range a.Matrix {
		n += len(s.Values)
	}
	return n
}

// thanosAnswers answers from a fresh store gateway and Thanos Query reading blocks up to the
// resolution res ("0s": raw only).
func thanosAnswers(t *testing.T, conf string, t0 time.Time, res string) (map[string]model.Matrix, int) {
	t.Helper()
	store := thanostest.Start(t, "store", true, "--objstore.config-file="+conf, "--data-dir="+t.TempDir())
	query := thanostest.Start(t, "query", true, "--endpoint="+store.GRPC)
	raw := url.Values{"max_source_resolution": {res}}
	require.Eventually(t, func() bool {
		a, err := thanostest.Query(t, "http://"+query.HTTP, `up`, t0.Add(time.Hour), raw)
		require.NoError(t, err)
		return len(a.Vector) > 0
	}, time.Minute, 200*time.Millisecond, "thanos query sees the store gateway")
	return answers(t, "http://"+query.HTTP, t0, raw), sampleCount(t, "http://"+query.HTTP, t0.Add(58*time.Hour), raw)
}

// edgetelAnswers answers from a fresh edgetel-query once it holds samples samples.
func edgetelAnswers(t *testing.T, bucketDir string, t0 time.Time, samples int) map[string]model.Matrix {
	t.Helper()
	c := DefaultConfig()
	c.BucketDir = bucketDir
	base := startQuery(t, c)
	require.Positive(t, samples)
	require.Eventually(t, func() bool {
		return sampleCount(t, base, t0.Add(58*time.Hour), nil) == samples
	}, time.Minute, 100*time.Millisecond, "edgetel-query synced every block")
	return answers(t, base, t0, nil)
}

// A bucket the objstore exporter wrote, out-of-order block included: `thanos tools bucket
// verify` finds only that overlap, `thanos compact` (vertical compaction, downsampling on)
// compacts and downsamples it, verify is then clean, and a fixed set of PromQL range queries
// gives the same answers before and after, from edgetel-query and from Thanos Query over a store
// gateway, at raw resolution.
func TestThanosCompactionKeepsAnswers(t *testing.T) {
	bin := thanostest.Bin(t)
	bucketDir, t0 := exporterBucket(t)
	conf := filepath.Join(t.TempDir(), "bucket.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("type: FILESYSTEM\nconfig: {directory: "+bucketDir+"}\n"), 0o600))

	theirs, samples := thanosAnswers(t, conf, t0, "0s")
	ours := edgetelAnswers(t, bucketDir, t0, samples)
	for _, q := range compactionQueries {
		assert.Equal(t, ours[q], theirs[q], "edgetel-query and thanos query before compaction: %s", q)
	}

	verify := thanostest.Run(t, bin, "tools", "bucket", "verify", "--objstore.config-file="+conf)
	assert.Contains(t, verify, "overlap", "the out-of-order block overlaps an in-order one")
	thanostest.Run(t, bin, "compact", "--objstore.config-file="+conf, "--data-dir="+t.TempDir(),
		"--http-address="+thanostest.FreeAddr(t), "--compact.enable-vertical-compaction",
		"--consistency-delay=0s", "--delete-delay=0s")
	verify = thanostest.Run(t, bin, "tools", "bucket", "verify", "--objstore.config-file="+conf)
	assert.Empty(t, thanostest.Warnings(verify), "bucket verify after compaction:\n%s", verify)

	bkt, err := bucket.New(context.Background(), &bucket.Config{Type: "FILESYSTEM", Config: map[string]string{"directory": bucketDir}}, nil)
	require.NoError(t, err)
	metas, err := bucket.Blocks(context.Background(), bkt)
	require.NoError(t, err)
	var compacted, downsampled int
	for _, m := range metas {
		if m.Thanos.Downsample.Resolution > 0 {
			downsampled++
		} else if m.Compaction.Level > 1 {
			compacted++
		}
	}
	t.Logf("after compaction: %d blocks, %d compacted raw, %d downsampled", len(metas), compacted, downsampled)
	assert.Positive(t, compacted, "raw blocks were compacted")
	assert.Positive(t, downsampled, "the 2-day block was downsampled")

	theirsAfter, samplesAfter := thanosAnswers(t, conf, t0, "0s")
	assert.Equal(t, samples, samplesAfter, "thanos query: samples before and after compaction")
	oursAfter := edgetelAnswers(t, bucketDir, t0, samples)
	for _, q := range compactionQueries {
		assert.Equal(t, ours[q], oursAfter[q], "edgetel-query before and after compaction: %s", q)
		assert.Equal(t, theirs[q], theirsAfter[q], "thanos query before and after compaction: %s", q)
	}

	// Raw retention deletes the 2-day raw block and leaves its 5-minute copy: edgetel-query
	// answers from it as Thanos Query does at max_source_resolution=5m, and raw data after it.
	// The first run marks the expired blocks for deletion, the next one deletes them.
	keep := time.Since(t0.Add(52 * time.Hour)).Round(time.Minute)
	for range 2 {
		thanostest.Run(t, bin, "compact", "--objstore.config-file="+conf, "--data-dir="+t.TempDir(),
			"--http-address="+thanostest.FreeAddr(t), "--compact.enable-vertical-compaction",
			"--consistency-delay=0s", "--delete-delay=0s", fmt.Sprintf("--retention.resolution-raw=%dm", int(keep.Minutes())))
	}
	metas, err = bucket.Blocks(context.Background(), bkt)
	require.NoError(t, err)
	for _, m := range metas {
		require.False(t, m.Thanos.Downsample.Resolution == 0 && m.MinTime < t0.Add(48*time.Hour).UnixMilli(),
			"raw retention deleted the raw blocks of the first two days: %s [%d, %d)", m.ULID, m.MinTime, m.MaxTime)
	}
	theirsDown, samplesDown := thanosAnswers(t, conf, t0, "5m")
	assert.Less(t, samplesDown, samples, "the first two days are 5-minute aggregates")
	oursDown := edgetelAnswers(t, bucketDir, t0, samplesDown)
	for _, q := range compactionQueries {
		assert.Equal(t, theirsDown[q], oursDown[q], "edgetel-query and thanos query over downsampled data: %s", q)
	}
}

// dashboardAnswers runs every dashboard expression as a range query over the fleet.
func dashboardAnswers(t *testing.T, base string, f fleet, exprs map[DashboardQuery]string, extra url.Values) map[string]model.Matrix {
	t.Helper()
	out := map[string]model.Matrix{}
	for q, expr := range exprs {
		a, err := thanostest.QueryRange(t, base, expr, f.base.Add(time.Hour), f.end(), 5*time.Minute, extra)
		require.NoError(t, err, "%s %s", q.File, q.Where)
		out[q.File+" "+q.Where] = a.Matrix
	}
	return out
}

// The shipped dashboards' expressions over a bucket of Thanos blocks (the test fleet, with
// external labels) answer the same before and after `thanos compact`, from edgetel-query and
// from Thanos Query, at raw resolution.
func TestThanosCompactionKeepsDashboardAnswers(t *testing.T) {
	bin := thanostest.Bin(t)
	ctx := context.Background()
	f := fleet{base: time.Now().Add(-9 * time.Hour).Truncate(2 * time.Hour), blocks: 4, step: 15 * time.Second}
	bucketDir := t.TempDir()
	bkt, err := bucket.New(ctx, &bucket.Config{Type: "FILESYSTEM", Config: map[string]string{"directory": bucketDir}}, nil)
	require.NoError(t, err)
	blocks := t.TempDir()
	for _, id := range f.writeBlocks(t, blocks) {
		dir := filepath.Join(blocks, id.String())
		m, err := bucket.ReadMetaFromDir(dir)
		require.NoError(t, err)
		m.Thanos = bucket.Thanos{Version: bucket.ThanosVersion1, Labels: map[string]string{"cluster": "fleet"}, Source: "sidecar"}
		require.NoError(t, m.FillFiles(dir))
		require.NoError(t, bucket.Upload(ctx, bkt, dir, m, nil))
	}
	conf := filepath.Join(t.TempDir(), "bucket.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("type: FILESYSTEM\nconfig: {directory: "+bucketDir+"}\n"), 0o600))
	exprs := map[DashboardQuery]string{}
	for q, e := range parsedDashboardQueries(t) {
		exprs[q] = e.String()
	}

	run := func() (ours, theirs map[string]model.Matrix) {
		store := thanostest.Start(t, "store", true, "--objstore.config-file="+conf, "--data-dir="+t.TempDir())
		query := thanostest.Start(t, "query", true, "--endpoint="+store.GRPC)
		raw := url.Values{"max_source_resolution": {"0s"}}
		var samples int
		require.Eventually(t, func() bool {
			samples = sampleCount(t, "http://"+query.HTTP, f.end(), raw)
			return samples > 0
		}, time.Minute, 200*time.Millisecond, "thanos query sees the store gateway")
		c := DefaultConfig()
		c.BucketDir = bucketDir
		base := startQuery(t, c)
		require.Eventually(t, func() bool {
			return sampleCount(t, base, f.end(), nil) == samples
		}, time.Minute, 100*time.Millisecond, "edgetel-query synced every block")
		return dashboardAnswers(t, base, f, exprs, nil), dashboardAnswers(t, "http://"+query.HTTP, f, exprs, raw)
	}
	ours, theirs := run()
	nonEmpty := 0
	for k, m := range ours {
		if len(m) > 0 {
			nonEmpty++
		}
		// Thanos sums series in another order, and a rate of large counters loses the last bits to
		// cancellation: the answers agree to about 1e-12, not bit for bit.
		assertCloseMatrix(t, m, theirs[k], "edgetel-query and thanos query: %s", k)
	}
	assert.Equal(t, len(exprs), nonEmpty, "every dashboard expression has data")

	thanostest.Run(t, bin, "compact", "--objstore.config-file="+conf, "--data-dir="+t.TempDir(),
		"--http-address="+thanostest.FreeAddr(t), "--compact.enable-vertical-compaction",
		"--consistency-delay=0s", "--delete-delay=0s")
	verify := thanostest.Run(t, bin, "tools", "bucket", "verify", "--objstore.config-file="+conf)
	assert.Empty(t, thanostest.Warnings(verify), "bucket verify after compaction:\n%s", verify)
	metas, err := bucket.Blocks(ctx, bkt)
	require.NoError(t, err)
	assert.Less(t, len(metas), f.blocks, "the compactor merged blocks")

	oursAfter, theirsAfter := run()
	for k := range ours {
		assert.Equal(t, ours[k], oursAfter[k], "edgetel-query before and after compaction: %s", k)
		assert.Equal(t, theirs[k], theirsAfter[k], "thanos query before and after compaction: %s", k)
	}
}

// assertCloseMatrix requires the same series and timestamps, and values equal to within a
// relative 1e-9.
func assertCloseMatrix(t *testing.T, want, got model.Matrix, msg string, args ...any) {
	t.Helper()
	if !assert.Equal(t, len(want), len(got), append([]any{msg + ": series"}, args...)...) {
		return
	}
	slices.SortFunc(want, func(a, b *model.SampleStream) int { return strings.Compare(a.Metric.String(), b.Metric.String()) })
	slices.SortFunc(got, func(a, b *model.SampleStream) int { return strings.Compare(a.Metric.String(), b.Metric.String()) })
	for i := range want {
		if !assert.Equal(t, want[i].Metric, got[i].Metric, append([]any{msg}, args...)...) ||
			!assert.Equal(t, len(want[i].Values), len(got[i].Values), append([]any{msg + ": samples of %s"}, append(args, want[i].Metric)...)...) {
			return
		}
		for j, w := range want[i].Values {
			g := got[i].Values[j]
			close := w.Timestamp == g.Timestamp && (w.Value == g.Value ||
				math.Abs(float64(w.Value-g.Value)) <= 1e-9*math.Max(math.Abs(float64(w.Value)), math.Abs(float64(g.Value))))
			if !close {
				assert.Fail(t, fmt.Sprintf("%s: %s at %s: %v != %v", fmt.Sprintf(msg, args...), want[i].Metric, w.Timestamp, w.Value, g.Value))
				return
			}
		}
	}
}
