package objstoreexporter

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgetel/edgetel/internal/bucket"
	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// t0 is a 2h-aligned start, so blocks of the data set start at t0 + k*2h.
var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

const step = 30 * time.Second

// staleAt is when sensor 0's gauge carries the NoRecordedValue flag.
var staleAt = t0 + 90*time.Minute.Milliseconds()

// point is one expected sample, formatted as promtool tsdb dump prints it.
type point struct {
	series string
	t      int64
	v      float64
}

func (p point) String() string { return fmt.Sprintf("%s %g %d", p.series, p.v, p.t) }

// dataset is a known data set: per scrape, for each sensor a gauge, a counter and a histogram,
// as the kubeedge receiver would deliver them (Prometheus names, job/instance resource).
type dataset struct {
	batches  []pmetric.Metrics
	expected []point
}

func newDataset(sensors int, from, to int64) *dataset {
	d := &dataset{}
	res := func(ls ...string) string {
		return labels.FromStrings(append(ls, "job", "kubelet", "instance", "edge-1:10350")...).String()
	}
	for ts := from; ts < to; ts += step.Milliseconds() {
		k := float64((ts - t0) / step.Milliseconds())
		md := pmetric.NewMetrics()
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr("service.name", "kubelet")
		rm.Resource().Attributes().PutStr("service.instance.id", "edge-1:10350")
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		g := ms.AppendEmpty()
		g.SetName("edge_temp_celsius")
		gd := g.SetEmptyGauge().DataPoints()
		c := ms.AppendEmpty()
		c.SetName("edge_packets_total")
		c.SetEmptySum().SetIsMonotonic(true)
		c.Sum().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		h := ms.AppendEmpty()
		h.SetName("edge_latency_seconds")
		h.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		for s := range sensors {
			sensor := strconv.Itoa(s)
			stamp := pcommon.Timestamp(ts * 1e6)
			gp := gd.AppendEmpty()
			gp.SetTimestamp(stamp)
			gp.SetDoubleValue(float64(s*100) + k*0.5)
			gp.Attributes().PutStr("sensor", sensor)
			gv := float64(s*100) + k*0.5
			if s == 0 && ts == staleAt {
				// The sensor vanished for one scrape: Prometheus' stale marker.
				gp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
				gv = staleNaN
			}
			d.expected = append(d.expected, point{res("__name__", "edge_temp_celsius", "sensor", sensor), ts, gv})

			cp := c.Sum().DataPoints().AppendEmpty()
			cp.SetTimestamp(stamp)
			cp.SetIntValue(int64(k * 15))
			cp.Attributes().PutStr("sensor", sensor)
			d.expected = append(d.expected, point{res("__name__", "edge_packets_total", "sensor", sensor), ts, k * 15})

			hp := h.Histogram().DataPoints().AppendEmpty()
			hp.SetTimestamp(stamp)
			hp.Attributes().PutStr("sensor", sensor)
			hp.ExplicitBounds().FromRaw([]float64{0.1, 1})
			hp.BucketCounts().FromRaw([]uint64{uint64(k), uint64(2 * k), uint64(k)})
			hp.SetCount(uint64(4 * k))
			hp.SetSum(2.5 * k)
			for _, b := range []struct {
				le string
				v  float64
			}{{"0.1", k}, {"1", 3 * k}, {"+Inf", 4 * k}} {
				d.expected = append(d.expected, point{res("__name__", "edge_latency_seconds_bucket", "sensor", sensor, "le", b.le), ts, b.v})
			}
			d.expected = append(d.expected,
				point{res("__name__", "edge_latency_seconds_sum", "sensor", sensor), ts, 2.5 * k},
				point{res("__name__", "edge_latency_seconds_count", "sensor", sensor), ts, 4 * k})
		}
		d.batches = append(d.batches, md)
	}
	return d
}

// before returns the expected points with t < maxt, as strings.
func (d *dataset) before(maxt int64) []string {
	var out []string
	for _, p := range d.expected {
		if p.t < maxt {
			out = append(out, p.String())
		}
	}
	return out
}

func testConfig(dir string) *Config {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.Directory = dir
	cfg.ExternalLabels = map[string]string{"cluster": "test", "site": "edge-1"}
	cfg.UploadInterval = 200 * time.Millisecond
	cfg.UploadRetry.InitialInterval = 50 * time.Millisecond
	cfg.UploadRetry.MaxInterval = 200 * time.Millisecond
	return cfg
}

// newTestExporter builds the exporter directly, so tests can wrap its bucket and reach its TSDB.
func newTestExporter(t testing.TB, cfg *Config, tel *componenttest.Telemetry, wrap func(objstore.Bucket) objstore.Bucket) *objstoreExporter {
	t.Helper()
	set := componenttest.NewNopTelemetrySettings()
	if tel != nil {
		set = tel.NewTelemetrySettings()
	}
	e, err := newExporter(cfg, set)
	require.NoError(t, err)
	if wrap != nil {
		open := e.newBucket
		e.newBucket = func(ctx context.Context) (objstore.Bucket, error) {
			b, err := open(ctx)
			if err != nil {
				return nil, err
			}
			return wrap(b), nil
		}
	}
	return e
}

func openBucket(t testing.TB, cfg *Config) objstore.Bucket {
	t.Helper()
	y, err := cfg.bucketYAML()
	require.NoError(t, err)
	b, err := bucket.NewFromYAML(context.Background(), y, nil)
	require.NoError(t, err)
	return b
}

// waitBlocks waits until the bucket holds n complete blocks and returns their metas.
func waitBlocks(t testing.TB, bkt objstore.Bucket, n int) []*bucket.Meta {
	t.Helper()
	var metas []*bucket.Meta
	var lastErr atomic.Value
	ok := assert.Eventually(t, func() bool {
		// A FILESYSTEM bucket writes meta.json in place: read while the exporter uploads it, it
		// can be empty for a moment (decode meta.json: EOF). S3 writes an object whole.
		m, err := bucket.Blocks(context.Background(), bkt)
		if err != nil {
			lastErr.Store(err.Error())
			return false
		}
		metas = m
		return len(metas) >= n
	}, 60*time.Second, 50*time.Millisecond, "waiting for %d blocks in the bucket", n)
	require.True(t, ok, "last error listing the bucket: %v", lastErr.Load())
	require.Len(t, metas, n)
	return metas
}

// downloadAll copies every complete block of the bucket into a fresh directory.
func downloadAll(t testing.TB, bkt objstore.Bucket) (string, []*bucket.Meta) {
	t.Helper()
	metas, err := bucket.Blocks(context.Background(), bkt)
	require.NoError(t, err)
	dir := t.TempDir()
	for _, m := range metas {
		require.NoError(t, bucket.Download(context.Background(), bkt, m.ULID, dir, nil))
	}
	// Read-only queriers (ours and promtool's) replay a WAL; blocks alone come with an empty one.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "wal"), 0o750))
	return dir, metas
}

// readSamples reads every sample of a TSDB directory with Prometheus' tsdb, formatted as dump lines.
func readSamples(t testing.TB, q storage.Queryable, mint, maxt int64) []string {
	t.Helper()
	querier, err := q.Querier(mint, maxt)
	require.NoError(t, err)
	defer querier.Close()
	ss := querier.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var out []string
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out = append(out, point{s.Labels().String(), ts, v}.String())
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return out
}

func openReadOnly(t testing.TB, dir string) *tsdb.DBReadOnly {
	t.Helper()
	db, err := tsdb.OpenDBReadOnly(dir, t.TempDir(), promslog.NewNopLogger())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger: promslog.NewNopLogger(), MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
	})
}

// instant runs a PromQL instant query and returns the vector as "labels value" lines.
func instant(t testing.TB, q storage.Queryable, query string, at int64) map[string]float64 {
	t.Helper()
	qry, err := newEngine().NewInstantQuery(context.Background(), q, nil, query, time.UnixMilli(at))
	require.NoError(t, err)
	defer qry.Close()
	res := qry.Exec(context.Background())
	require.NoError(t, res.Err)
	vec, err := res.Vector()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, s := range vec {
		out[s.Metric.String()] = s.F
	}
	return out
}

// promtool returns the promtool binary from EDGETEL_PROMTOOL: skip when unset, fail when missing.
func promtool(t *testing.T) string {
	t.Helper()
	return testprog.Path(t, "EDGETEL_PROMTOOL", "tool-prometheus")
}

func runPromtool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "promtool %s: %s", strings.Join(args, " "), stderr.String())
	return stdout.String()
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func blockDirs(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "meta.json")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

var staleNaN = math.Float64frombits(value.StaleNaN)

func sumPoints(m metricdata.Metrics) []metricdata.DataPoint[int64] {
	if s, ok := m.Data.(metricdata.Sum[int64]); ok {
		return s.DataPoints
	}
	return nil
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// assertSameSamples compares sample lines as sets and reports only a few differences.
func assertSameSamples(t testing.TB, want, got []string, msg string) {
	t.Helper()
	w, g := map[string]int{}, map[string]int{}
	for _, s := range want {
		w[s]++
	}
	for _, s := range got {
		g[s]++
	}
	var missing, extra []string
	for s, n := range w {
		if g[s] < n {
			missing = append(missing, s)
		}
	}
	for s, n := range g {
		if w[s] < n {
			extra = append(extra, s)
		}
	}
	if len(missing)+len(extra) == 0 && len(want) == len(got) {
		return
	}
	t.Errorf("%s: want %d samples, got %d; %d missing (e.g. %q), %d unexpected (e.g. %q)",
		msg, len(want), len(got), len(missing), first(missing, 3), len(extra), first(extra, 3))
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// merge joins data sets.
func merge(ds ...*dataset) *dataset {
	out := &dataset{}
	for _, d := range ds {
		out.batches = append(out.batches, d.batches...)
		out.expected = append(out.expected, d.expected...)
	}
	return out
}
