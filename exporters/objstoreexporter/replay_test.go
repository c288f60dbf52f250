package objstoreexporter

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// fillAndStop stores ds in an exporter's head (no block is cut: it spans less than 1.5 block
// ranges) and shuts it down, leaving the head in the WAL.
func fillAndStop(t *testing.T, cfg *Config, ds *dataset) {
	t.Helper()
	ctx := context.Background()
	e := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	for _, md := range ds.batches {
		require.NoError(t, e.push(ctx, md))
	}
	require.NoError(t, e.Shutdown(ctx))
}

// holdReplay makes e's replay wait for release before it opens the previous head.
func holdReplay(e *objstoreExporter) (started <-chan struct{}, release func()) {
	s, r := make(chan struct{}), make(chan struct{})
	open := e.openReplay
	e.openReplay = func(dir string, opts *tsdb.Options) (*tsdb.DB, error) {
		close(s)
		<-r
		return open(dir, opts)
	}
	return s, func() { close(r) }
}

func replayPending(t *testing.T, tel *componenttest.Telemetry) int64 {
	t.Helper()
	m, err := tel.GetMetric("otelcol_exporter_objstore_replay_pending")
	require.NoError(t, err)
	return m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value
}

// Start does not wait for the previous head: live data is stored while it is replayed, queries
// see both once the replayed head is open, and the old head ends up in blocks in the bucket.
func TestStartReplaysThePreviousHeadInTheBackground(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	old := newDataset(2, t0, t0+time.Hour.Milliseconds())
	fillAndStop(t, cfg, old)

	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(ctx) })
	e := newTestExporter(t, cfg, tel, nil)
	started, release := holdReplay(e)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e.Shutdown(ctx) })
	<-started
	assert.Positive(t, replayPending(t, tel), "replay in progress")

	live := newDataset(2, t0+2*hour, t0+3*hour)
	for _, md := range live.batches {
		require.NoError(t, e.push(ctx, md), "live data is stored while the old head waits")
	}
	assertSameSamples(t, live.before(t0+3*hour), readSamples(t, e.store, t0, t0+3*hour), "before the replayed head is open")

	release()
	<-e.replayDone
	assert.Zero(t, replayPending(t, tel))
	all := merge(old, live)
	assertSameSamples(t, all.before(t0+3*hour), readSamples(t, e.store, t0, t0+3*hour), "after the replay")
	assert.Equal(t, t0+2*hour, e.db.Head().MinTime(), "the live head holds only live data")
	entries, err := filepath.Glob(filepath.Join(cfg.Directory, replayPrefix+"*"))
	require.NoError(t, err)
	assert.Empty(t, entries, "the replay directory is deleted")

	bkt := openBucket(t, cfg)
	metas := waitBlocks(t, bkt, 1)
	assert.Equal(t, t0, metas[0].MinTime)
	bdir, _ := downloadAll(t, bkt)
	assertSameSamples(t, old.before(t0+hour), readSamples(t, openReadOnly(t, bdir), t0, t0+3*hour), "bucket")
}

// A Shutdown while the replay waits loses nothing: the next start replays both previous heads.
// So does a crash in the middle of moving the head aside.
func TestReplayResumesAfterShutdownAndInterruptedMove(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	first := newDataset(2, t0, t0+time.Hour.Milliseconds())
	fillAndStop(t, cfg, first)

	e := newTestExporter(t, cfg, nil, nil)
	started, release := holdReplay(e)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	<-started
	second := newDataset(2, t0+2*hour, t0+3*hour)
	for _, md := range second.batches {
		require.NoError(t, e.push(ctx, md))
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, e.Shutdown(short), context.DeadlineExceeded, "tsdb's WAL replay cannot be interrupted")
	release()
	<-e.replayDone

	// A crash halfway through the next move aside: the WAL moved, the head chunks not yet.
	tmp := filepath.Join(cfg.Directory, replayPrefix+"00000000000000000001"+replayTmp)
	require.NoError(t, os.MkdirAll(tmp, 0o750))
	require.NoError(t, writeMinValid(filepath.Join(cfg.Directory, "tsdb"), tmp))
	require.NoError(t, os.Rename(filepath.Join(cfg.Directory, "tsdb", "wal"), filepath.Join(tmp, "wal")))

	e2 := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e2.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e2.Shutdown(ctx) })
	<-e2.replayDone
	all := merge(first, second)
	assertSameSamples(t, all.before(t0+3*hour), readSamples(t, e2.store, t0, t0+3*hour), "both previous heads")
	assert.Len(t, e2.db.Blocks(), 2)
	_, err := os.Stat(filepath.Join(cfg.Directory, "tsdb", "chunks_head"))
	assert.NoError(t, err, "the live TSDB has its own head chunks again")
}

// The live head may hold samples older than the end of a block a replay moved in (late data,
// or timestamps a node sends): the next start's replay keeps them.
func TestReplayKeepsLiveSamplesOlderThanReplayedBlocks(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	old := newDataset(2, t0+hour, t0+2*hour)
	fillAndStop(t, cfg, old)

	e := newTestExporter(t, cfg, nil, nil)
	started, release := holdReplay(e)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	<-started
	late := newDataset(2, t0, t0+30*time.Minute.Milliseconds())
	for _, md := range late.batches {
		require.NoError(t, e.push(ctx, md))
	}
	release()
	<-e.replayDone
	require.NoError(t, e.Shutdown(ctx))

	e2 := newTestExporter(t, cfg, nil, nil)
	require.NoError(t, e2.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { _ = e2.Shutdown(ctx) })
	<-e2.replayDone
	all := merge(old, late)
	assertSameSamples(t, all.before(t0+2*hour), readSamples(t, e2.store, t0, t0+2*hour), "after two restarts")
}
