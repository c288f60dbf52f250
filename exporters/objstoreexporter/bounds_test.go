package objstoreexporter

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/edgetel/edgetel/exporters/objstoreexporter/internal/metadata"
)

// oneBlockFails fails every upload under the first block directory it is asked to write (the
// oldest block: blocks are shipped oldest first), and passes the rest to the real bucket.
type oneBlockFails struct {
	objstore.Bucket
	mu  sync.Mutex
	bad string
}

func (b *oneBlockFails) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	dir, _, _ := strings.Cut(name, "/")
	b.mu.Lock()
	if b.bad == "" {
		b.bad = dir
	}
	bad := b.bad == dir
	b.mu.Unlock()
	if bad {
		return errors.New("upload refused for this block")
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *oneBlockFails) badBlock() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bad
}

// downBucket fails every upload: the bucket is unreachable.
type downBucket struct{ objstore.Bucket }

func (downBucket) Upload(context.Context, string, io.Reader, ...objstore.ObjectUploadOption) error {
	return errors.New("bucket unreachable")
}

func startExporter(t *testing.T, cfg *Config, tel *componenttest.Telemetry, wrap func(objstore.Bucket) objstore.Bucket) *objstoreExporter {
	t.Helper()
	e := newTestExporter(t, cfg, tel, wrap)
	require.NoError(t, e.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

func localBlockIDs(e *objstoreExporter) []string {
	var ids []string
	for _, b := range e.db.Blocks() {
		ids = append(ids, b.Meta().ULID.String())
	}
	return ids
}

// TestFailingBlockDoesNotHoldUpTheOthers: one block the bucket keeps refusing is retried, while
// the blocks after it are uploaded and leave local disk after local_retention.
func TestFailingBlockDoesNotHoldUpTheOthers(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.LocalRetention = 0
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	fb := &oneBlockFails{}
	e := startExporter(t, cfg, tel, func(b objstore.Bucket) objstore.Bucket { fb.Bucket = b; return fb })
	for _, md := range newDataset(1, t0, t0+9*hour).batches { // cuts [0,2h), [2h,4h), [4h,6h)
		require.NoError(t, e.push(ctx, md))
	}
	metas := waitBlocks(t, openBucket(t, cfg), 2)
	for _, m := range metas {
		assert.NotEqual(t, fb.badBlock(), m.ULID.String())
		assert.Greater(t, m.MinTime, t0, "the failing block is the oldest")
	}
	require.Eventually(t, func() bool {
		ids := localBlockIDs(e)
		return len(ids) == 1 && ids[0] == fb.badBlock()
	}, 30*time.Second, 20*time.Millisecond, "uploaded blocks leave local disk; the failing one stays")
	assert.Positive(t, counterValue(t, tel, "otelcol_exporter_objstore_upload_failures", ""))
	assert.Positive(t, gaugeValue(t, tel, "otelcol_exporter_objstore_upload_lag"), "the failing block shows as upload lag")
}

func gaugeValue(t *testing.T, tel *componenttest.Telemetry, name string) float64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	require.NoError(t, err)
	return m.Data.(metricdata.Gauge[float64]).DataPoints[0].Value
}

// TestLocalMaxAgeWhileBucketIsDown: with the bucket down, blocks that end local_max_age or more
// behind the newest block leave local disk and are counted, with their samples.
func TestLocalMaxAgeWhileBucketIsDown(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.LocalMaxAge = 2 * time.Hour
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	e := startExporter(t, cfg, tel, func(b objstore.Bucket) objstore.Bucket { return downBucket{b} })
	ds := newDataset(1, t0, t0+9*hour) // cuts [0,2h), [2h,4h), [4h,6h); the head holds [6h,9h)
	for _, md := range ds.batches {
		require.NoError(t, e.push(ctx, md))
	}
	require.Eventually(t, func() bool {
		bs := e.db.Blocks()
		return len(bs) == 1 && bs[0].Meta().MinTime == t0+4*hour && counterOrZero(t, tel, "otelcol_exporter_objstore_local_blocks_dropped", "max_age") == 2
	}, 30*time.Second, 20*time.Millisecond, "only the newest block stays")
	assert.Equal(t, int64(2), counterValue(t, tel, "otelcol_exporter_objstore_local_blocks_dropped", "max_age"))
	assert.Equal(t, int64(len(ds.before(t0+4*hour))), counterValue(t, tel, "otelcol_exporter_objstore_local_samples_dropped", "max_age"))
	_, err := tel.GetMetric("otelcol_exporter_objstore_blocks_uploaded")
	assert.Error(t, err, "nothing uploaded")
}

// TestLocalMaxBytesWhileBucketIsDown: with the bucket down, local blocks beyond local_max_bytes
// (here: any) leave local disk and are counted, each once.
func TestLocalMaxBytesWhileBucketIsDown(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.LocalMaxBytes = 1
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	e := startExporter(t, cfg, tel, func(b objstore.Bucket) objstore.Bucket { return downBucket{b} })
	ds := newDataset(1, t0, t0+9*hour)
	for _, md := range ds.batches {
		require.NoError(t, e.push(ctx, md))
	}
	require.Eventually(t, func() bool {
		return counterOrZero(t, tel, "otelcol_exporter_objstore_local_blocks_dropped", "max_bytes") == 3 &&
			counterOrZero(t, tel, "otelcol_exporter_objstore_blocks_cut", "") == 3 && len(e.db.Blocks()) == 0
	}, 30*time.Second, 20*time.Millisecond, "blocks deleted at once still count as cut")
	assert.Equal(t, int64(len(ds.before(t0+6*hour))), counterValue(t, tel, "otelcol_exporter_objstore_local_samples_dropped", "max_bytes"))

	// Two more hours cut one more block: retention passes ran in between, each block counts once.
	more := newDataset(1, t0+9*hour, t0+11*hour)
	for _, md := range more.batches {
		require.NoError(t, e.push(ctx, md))
	}
	require.Eventually(t, func() bool {
		return counterOrZero(t, tel, "otelcol_exporter_objstore_blocks_cut", "") == 4 && len(e.db.Blocks()) == 0
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, int64(4), counterValue(t, tel, "otelcol_exporter_objstore_local_blocks_dropped", "max_bytes"))
	assert.Equal(t, int64(len(merge(ds, more).before(t0+8*hour))), counterValue(t, tel, "otelcol_exporter_objstore_local_samples_dropped", "max_bytes"))
}

// TestRetentionDropsUploadedBlocksFirst checks the order of the size bound and of a full disk
// on real blocks: uploaded blocks before unuploaded ones, oldest first, only as many as needed.
func TestRetentionDropsUploadedBlocksFirst(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	e := startExporter(t, cfg, nil, func(b objstore.Bucket) objstore.Bucket { return downBucket{b} })
	for _, md := range newDataset(1, t0, t0+11*hour).batches { // 4 blocks: [0,2h) … [6h,8h)
		require.NoError(t, e.push(ctx, md))
	}
	require.Eventually(t, func() bool { return len(e.db.Blocks()) == 4 }, 30*time.Second, 20*time.Millisecond)
	blocks := e.db.Blocks()

	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	st, err := newTelemetry(tel.NewTelemetrySettings().MeterProvider)
	require.NoError(t, err)
	c := *cfg
	state := &shipState{Version: 1, Uploaded: []ulidT{blocks[2].Meta().ULID}, UploadedAt: map[ulidT]time.Time{blocks[2].Meta().ULID: time.Now()}}
	sh := newShipper(&c, nil, state, st, e.logger)
	const head = 1000
	sh.setHeadSize(func() int64 { return head })
	// Room for the head and two blocks: the uploaded block goes first, then the oldest.
	c.LocalMaxBytes = head + blocks[0].Size() + blocks[1].Size() + blocks[3].Size() - 1
	assert.Equal(t, set(blocks[2], blocks[0]), sh.deletable(blocks, time.Now()))
	assert.Equal(t, int64(1), counterValue(t, tel, "otelcol_exporter_objstore_local_blocks_dropped", "max_bytes"))

	c.LocalMaxBytes = 0
	assert.Empty(t, sh.deletable(blocks, time.Now()), "no bound, no full disk: nothing goes before its upload")
	sh.makeRoom()
	assert.Equal(t, set(blocks[2]), sh.deletable(blocks, time.Now()), "a full disk frees an uploaded block first")
	assert.Empty(t, sh.deletable(blocks, time.Now()), "one block per full-disk report")
	sh.makeRoom()
	assert.Equal(t, set(blocks[1]), sh.deletable(blocks[1:2], time.Now()))
	assert.Equal(t, int64(1), counterValue(t, tel, "otelcol_exporter_objstore_local_blocks_dropped", "disk_full"))
	assert.Equal(t, int64(1), counterValue(t, tel, "otelcol_exporter_objstore_local_blocks_dropped", "max_bytes"), "each block counts once")
}

func set(bs ...*tsdb.Block) map[ulidT]struct{} {
	out := map[ulidT]struct{}{}
	for _, b := range bs {
		out[b.Meta().ULID] = struct{}{}
	}
	return out
}

// TestStalledDiskDoesNotHoldUpThePipeline: when the local disk stalls, the exporter built as
// the Collector builds it (exporterhelper with the default timeout and retry) returns by its
// timeout with a permanent, counted error, refuses further batches at once while the stall
// lasts, and stores again (including the stalled batch) once the disk is back.
func TestStalledDiskDoesNotHoldUpThePipeline(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.TimeoutConfig.Timeout = 300 * time.Millisecond
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	e := newTestExporter(t, cfg, tel, nil)
	release := make(chan struct{})
	var stall sync.Once
	commit := e.commit
	e.commit = func(app storage.AppenderV2) error {
		stall.Do(func() { <-release }) // the first commit waits for the disk
		return commit(app)
	}
	set := exportertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tel.NewTelemetrySettings()
	exp, err := wrapExporter(ctx, set, cfg, e)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = exp.Shutdown(ctx) })

	ds := newDataset(1, t0, t0+3*step.Milliseconds())
	consume := func(i int) error {
		done := make(chan error, 1)
		go func() { done <- exp.ConsumeMetrics(ctx, ds.batches[i]) }()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("ConsumeMetrics is still blocked on the stalled disk")
			return nil
		}
	}
	err = consume(0)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "a permanent error: not retried inside the pipeline")
	assert.Contains(t, err.Error(), "did not store the batch in time")
	err = consume(1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has not finished the previous append")
	assert.Equal(t, int64(2), counterValue(t, tel, "otelcol_exporter_objstore_batches_refused", "stalled"))

	close(release)
	require.Eventually(t, func() bool { return e.overdue.Load() == 0 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, consume(2))
	var want []string
	for _, p := range ds.expected {
		if p.t != t0+step.Milliseconds() {
			want = append(want, p.String())
		}
	}
	got := readSamples(t, e.db, t0, t0+hour)
	assertSameSamples(t, want, got, "the stalled batch and the batch after the stall are stored; the refused one is not")
}

// counterOrZero is counterValue, 0 while the counter has not been recorded yet.
func counterOrZero(t *testing.T, tel *componenttest.Telemetry, name, reason string) int64 {
	t.Helper()
	if _, err := tel.GetMetric(name); err != nil {
		return 0
	}
	return counterValue(t, tel, name, reason)
}

// TestCommitRunsBesideTheNextBatch: a batch is converted and committed while the previous
// batch's commit is still writing, so that appends are not held to one core.
func TestCommitRunsBesideTheNextBatch(t *testing.T) {
	ctx := context.Background()
	e := newTestExporter(t, testConfig(t.TempDir()), nil, nil)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })
	release := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release) // a failed assertion must not leave Shutdown waiting for the commit
		}
	})
	var commits atomic.Int32
	writing := make(chan struct{})
	commit := e.commit
	e.commit = func(app storage.AppenderV2) error {
		if commits.Add(1) == 1 {
			close(writing)
			<-release // the first commit writes slowly
		}
		return commit(app)
	}
	ds := newDataset(2, t0, t0+2*step.Milliseconds())
	firstDone := make(chan error, 1)
	go func() { firstDone <- e.push(ctx, ds.batches[0]) }()
	<-writing
	pushCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, e.push(pushCtx, ds.batches[1]), "the second batch waited for the first one's commit")
	select {
	case <-firstDone:
		t.Fatal("the first commit was meant to be still writing")
	default:
	}
	close(release)
	require.NoError(t, <-firstDone)
	assertSameSamples(t, ds.before(t0+hour), readSamples(t, e.db, t0, t0+hour), "both batches stored")
}
