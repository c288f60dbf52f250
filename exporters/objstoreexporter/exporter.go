package objstoreexporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap/exp/zapslog"

	"github.com/edgetel/edgetel/internal/bucket"
)

// objstoreExporter appends metrics to a local TSDB and ships the blocks it cuts to a bucket.
type objstoreExporter struct {
	cfg    *Config
	set    component.TelemetrySettings
	logger *slog.Logger
	tel    *telemetry

	// newBucket opens the bucket; tests wrap it.
	newBucket func(ctx context.Context) (objstore.Bucket, error)

	// lanes convert batches side by side, a node's batches always in the same lane.
	lanes []*lane
	// commits are the commits running; Shutdown waits for them.
	commits sync.WaitGroup
	// overdue counts the commits running past their batch's deadline: while there is one, pushes
	// are refused at once instead of each waiting out its own deadline.
	overdue atomic.Int32
	// commit writes an append to the WAL; tests slow it down.
	commit func(storage.AppenderV2) error
	// openReplay opens a previous run's head (tsdb.Open replays its WAL); tests hold it up.
	openReplay func(dir string, opts *tsdb.Options) (*tsdb.DB, error)

	db      *tsdb.DB
	shipper *shipper
	head    *headAPI
	store   *localStore

	// replayCancel and replayDone stop the goroutine that writes a previous run's head out.
	replayCancel context.CancelFunc
	replayDone   chan struct{}

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func newExporter(cfg *Config, set component.TelemetrySettings) (*objstoreExporter, error) {
	tel, err := newTelemetry(set.MeterProvider)
	if err != nil {
		return nil, err
	}
	logger := slog.New(zapslog.NewHandler(set.Logger.Core()))
	e := &objstoreExporter{
		cfg:    cfg,
		set:    set,
		logger: logger,
		tel:    tel,
		lanes:  newLanes(cfg, runtime.GOMAXPROCS(0)),
		kick:   make(chan struct{}, 1),
		commit: func(app storage.AppenderV2) error { return app.Commit() },
	}
	e.openReplay = func(dir string, opts *tsdb.Options) (*tsdb.DB, error) {
		return tsdb.Open(dir, logger.With("replay", dir), nil, opts, nil)
	}
	e.newBucket = func(ctx context.Context) (objstore.Bucket, error) {
		conf, err := cfg.bucketYAML()
		if err != nil {
			return nil, err
		}
		return bucket.NewFromYAML(ctx, conf, logger)
	}
	return e, nil
}

func (e *objstoreExporter) tsdbDir() string { return filepath.Join(e.cfg.Directory, "tsdb") }

// Start moves a previous run's head aside and opens an empty one for live appends at once (see
// replay.go), then starts the goroutine that writes the old head out as blocks and the
// cut-and-upload loop, which also uploads blocks a previous run cut but did not ship.
func (e *objstoreExporter) Start(ctx context.Context, host component.Host) error {
	if err := os.MkdirAll(e.cfg.Directory, 0o750); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	replays, err := moveHeadAside(e.cfg.Directory, e.tsdbDir(), time.Now())
	if err != nil {
		return fmt.Errorf("objstore exporter: %w", err)
	}
	if err := startHeadBound(e.cfg.Directory, e.tsdbDir()); err != nil {
		return fmt.Errorf("objstore exporter: %w", err)
	}
	bkt, err := e.newBucket(ctx)
	if err != nil {
		return err
	}
	state, err := loadState(filepath.Join(e.cfg.Directory, stateFilename))
	if err != nil {
		bkt.Close()
		return err
	}
	sh := newShipper(e.cfg, bkt, state, e.tel, e.logger)
	db, err := tsdb.Open(e.tsdbDir(), e.logger, nil, e.tsdbOptions(sh), nil)
	if err != nil {
		bkt.Close()
		return fmt.Errorf("open local tsdb %s: %w", e.tsdbDir(), err)
	}
	e.shipper = sh
	e.store = newLocalStore(db)
	sh.setHeadSize(db.Head().Size)
	// Cutting is driven by the loop below, so that every block cut is seen and counted.
	db.DisableCompactions()
	if err := e.tel.observe(db.Head()); err != nil {
		db.Close()
		bkt.Close()
		e.shipper = nil
		return err
	}
	head, err := e.startHeadAPI(ctx, host, e.store)
	if err != nil {
		db.Close()
		bkt.Close()
		e.shipper = nil
		return err
	}
	e.db, e.head = db, head

	loopCtx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go e.loop(loopCtx)
	e.startReplay(replays)
	return nil
}

func (e *objstoreExporter) startReplay(dirs []string) {
	sizes := make([]int64, len(dirs))
	e.tel.replayPending.Store(0)
	for i, d := range dirs {
		sizes[i] = dirBytes(d)
		e.tel.replayPending.Add(sizes[i])
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.replayCancel, e.replayDone = cancel, make(chan struct{})
	go e.replayAll(ctx, dirs, sizes)
}

// stopReplay stops the replay goroutine. It cannot interrupt tsdb's WAL replay, so it waits for
// that until ctx ends; whatever is left is replayed at the next start.
func (e *objstoreExporter) stopReplay(ctx context.Context) error {
	if e.replayCancel == nil {
		return nil
	}
	e.replayCancel()
	e.replayCancel = nil
	select {
	case <-e.replayDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("objstore exporter: the replay of a previous run's head is still running; it continues at the next start: %w", ctx.Err())
	}
}

func (e *objstoreExporter) tsdbOptions(sh *shipper) *tsdb.Options {
	o := tsdb.DefaultOptions()
	o.MinBlockDuration = e.cfg.BlockDuration.Milliseconds()
	o.MaxBlockDuration = o.MinBlockDuration
	o.OutOfOrderTimeWindow = e.cfg.OutOfOrderWindow.Milliseconds()
	// Isolation keeps a ring of append IDs per series (~60 bytes each, millions of series) so
	// that a query never sees half of a commit. A half-committed scrape in a head query is
	// harmless here; Thanos Receive turns it off too (pkg/receive/multitsdb.go).
	o.IsolationDisabled = true
	// Overlapping (out-of-order) blocks are shipped as they are; Thanos' compactor merges them.
	o.EnableOverlappingCompaction = false
	// Retention (BlocksToDelete) runs at each reload: keep it in step with uploads.
	o.BlockReloadInterval = min(e.cfg.UploadInterval, time.Minute)
	o.BlocksToDelete = func(blocks []*tsdb.Block) map[ulidT]struct{} { return sh.deletable(blocks, time.Now()) }
	return o
}

// Shutdown stops the head API and the loop, closes the TSDB (its head stays in the WAL for the
// next start, unless flush_on_shutdown writes it out and uploads it first) and the bucket. Safe
// without Start.
func (e *objstoreExporter) Shutdown(ctx context.Context) error {
	headErr := e.head.shutdown(ctx)
	e.head = nil
	replayErr := e.stopReplay(ctx)
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
	unlock := e.lockLanes() // no conversion starts, then the commits still running end
	defer unlock()
	e.commits.Wait()
	errs := []error{headErr, replayErr, e.tel.stop()}
	if e.db != nil && e.cfg.FlushOnShutdown {
		errs = append(errs, e.flush(ctx))
	}
	if e.db != nil {
		errs = append(errs, e.db.Close())
		e.db = nil
	}
	if e.shipper != nil {
		errs = append(errs, e.shipper.bkt.Close())
		e.shipper = nil
	}
	return errors.Join(errs...)
}

func (e *objstoreExporter) loop(ctx context.Context) {
	defer close(e.done)
	e.checkBucket(ctx)
	wait := time.Duration(0) // sync right away: ship what a previous run left
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-e.kick:
		}
		wait = e.cfg.UploadInterval
		if err := e.sync(ctx); err != nil && ctx.Err() == nil {
			e.logUploadError("objstore exporter: cut or upload failed, retrying", err)
			wait = e.shipper.backoff()
		}
	}
}

// checkBucket tells at start what the first upload, a block later, would find: refused
// credentials or a missing bucket (Error), an unreachable one (Warn). Blocks stay local and are
// retried either way.
func (e *objstoreExporter) checkBucket(ctx context.Context) {
	checkCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := bucket.Check(checkCtx, e.shipper.bkt); err != nil && ctx.Err() == nil {
		e.logUploadError("objstore exporter: the bucket cannot be used yet; blocks stay on local disk until it can", err)
	}
}

// logUploadError logs at Error what needs an operator (the bucket refused the credentials or
// does not exist), at Warn what may heal by itself.
func (e *objstoreExporter) logUploadError(msg string, err error) {
	if errors.Is(err, bucket.ErrCredentials) || errors.Is(err, bucket.ErrNoSuchBucket) {
		e.logger.Error(msg, "err", err)
		return
	}
	e.logger.Warn(msg, "err", err)
}

// sync cuts the blocks that are due and uploads every block not uploaded yet.
func (e *objstoreExporter) sync(ctx context.Context) error {
	if err := e.cut(ctx); err != nil {
		return err
	}
	return e.shipper.ship(ctx, e.db.Blocks())
}

func (e *objstoreExporter) cut(ctx context.Context) error {
	before := len(e.db.Blocks())
	known := make(map[ulidT]struct{}, before)
	for _, b := range e.db.Blocks() {
		known[b.Meta().ULID] = struct{}{}
	}
	headMin := e.db.Head().MinTime()
	if err := e.db.Compact(ctx); err != nil {
		return fmt.Errorf("cut block: %w", err)
	}
	cut := 0
	for _, b := range e.db.Blocks() {
		if _, ok := known[b.Meta().ULID]; !ok {
			cut++
		}
	}
	// A block that retention deleted within Compact (local_max_bytes) is not in Blocks(); the
	// head still moved past its range.
	cut = max(cut, e.headBlocksCut(headMin, e.db.Head().MinTime()))
	if cut > 0 {
		e.raiseHeadBound()
		e.tel.blocksCut.Add(ctx, int64(cut))
		for _, l := range e.lanes {
			l.lock <- struct{}{}
			l.series.sweep()
			<-l.lock
		}
	}
	return nil
}

// push appends md to the local TSDB. It returns by ctx's deadline (the exporter's timeout) at
// the latest: a batch that cannot be stored in time is refused with a permanent error and
// counted, so that the exporters after this one in the pipeline (remote write) still receive
// it. A commit that overruns the deadline finishes in the background; its samples are kept.
// headBlocksCut is how many block ranges the head's start moved over.
func (e *objstoreExporter) headBlocksCut(before, after int64) int {
	d := e.cfg.BlockDuration.Milliseconds()
	if before == math.MaxInt64 || after == math.MaxInt64 || after <= before {
		return 0
	}
	start := before - ((before%d)+d)%d // the range holding before
	return int((after - start) / d)
}

func (e *objstoreExporter) push(ctx context.Context, md pmetric.Metrics) error {
	if e.overdue.Load() > 0 {
		return e.refuse(ctx, reasonStalled, errors.New("the local disk has not finished the previous append"))
	}
	l := e.laneOf(md)
	select {
	case l.lock <- struct{}{}:
	case <-ctx.Done():
		return e.refuse(ctx, reasonBusy, fmt.Errorf("waiting for the previous append: %w", ctx.Err()))
	}
	if e.db == nil {
		<-l.lock
		return errors.New("objstore exporter not started")
	}
	sh := e.shipper // read under the lock: Shutdown clears it
	app := &tsdbAppender{app: e.db.AppenderV2(ctx), cache: l.series, maxT: e.maxT()}
	st, err := l.conv.Convert(md, app)
	if err != nil {
		_ = app.app.Rollback()
		<-l.lock
		return fmt.Errorf("append to local tsdb: %w", err)
	}
	// The commit (the WAL write, the samples into the head's chunks) runs beside the next
	// batch's conversion: one lock over both kept a shard's appends to one core, and a thousand
	// nodes' batches then waited out their deadline for it. tsdb's appenders commit
	// concurrently, as Prometheus' scrape loops do. md is not read after Convert.
	e.commits.Add(1)
	<-l.lock
	done := make(chan error, 1)
	var mu sync.Mutex // orders the commit's end and the deadline's verdict on overdue
	finished, late := false, false
	go func() {
		defer e.commits.Done()
		err := e.commit(app.app)
		mu.Lock()
		finished = true
		if late {
			e.overdue.Add(-1)
		}
		mu.Unlock()
		if err == nil {
			e.tel.recordAppend(context.WithoutCancel(ctx), app, st.Unsupported)
			e.kickIfDue()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return e.commitFailed(ctx, sh, err, st.Unsupported)
	case <-ctx.Done():
		mu.Lock()
		if !finished {
			late = true
			e.overdue.Add(1)
		}
		mu.Unlock()
		return e.refuse(ctx, reasonStalled, fmt.Errorf("the local disk did not store the batch in time (it may still be stored): %w", ctx.Err()))
	}
}

// commitFailed turns a commit error into the push's result: a full disk also makes tsdb's next
// retention pass drop the oldest local block.
func (e *objstoreExporter) commitFailed(ctx context.Context, sh *shipper, err error, unsupported int) error {
	if err == nil {
		if unsupported > 0 {
			e.logger.Debug("objstore exporter: skipped data points without a Prometheus form", "count", unsupported)
		}
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) {
		sh.makeRoom()
		return e.refuse(ctx, reasonDiskFull, fmt.Errorf("commit to local tsdb: %w", err))
	}
	return e.refuse(ctx, reasonWriteError, fmt.Errorf("commit to local tsdb: %w", err))
}

// refuse counts a refused batch and returns its error as permanent: retrying it would hold up
// the pipeline.
func (e *objstoreExporter) refuse(ctx context.Context, reason metric.AddOption, err error) error {
	e.tel.batchesRefused.Add(context.WithoutCancel(ctx), 1, reason)
	return consumererror.NewPermanent(fmt.Errorf("objstore exporter refused the batch: %w", err))
}

// kickIfDue wakes the loop when the head spans enough time for tsdb to cut a block.
func (e *objstoreExporter) kickIfDue() {
	h := e.db.Head()
	if h.MaxTime()-h.MinTime() <= e.cfg.BlockDuration.Milliseconds()*3/2 {
		return
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// maxT is the newest timestamp a sample may have now: max_future_skew ahead of this host's
// clock. One node with a wrong clock would otherwise move the head's newest time ahead and make
// every other node's samples "too old" for the out-of-order window.
func (e *objstoreExporter) maxT() int64 {
	if e.cfg.MaxFutureSkew == 0 {
		return math.MaxInt64
	}
	return time.Now().Add(e.cfg.MaxFutureSkew).UnixMilli()
}

// tsdbAppender feeds converted samples to a tsdb appender, reusing cached series refs.
type tsdbAppender struct {
	app   storage.AppenderV2
	cache *seriesCache
	maxT  int64 // samples after this are dropped

	appended, tooOld, outOfBounds, duplicate, outOfOrder, future int64
}

func (a *tsdbAppender) Append(ls labels.Labels, t int64, v float64) error {
	if t > a.maxT {
		a.future++
		return nil
	}
	// tsdb keeps the label set of a new series, and ls aliases the converter's buffer: always
	// hand it the interned copy.
	ent := a.cache.entry(ls)
	ref, err := a.app.Append(ent.ref, ent.ls, 0, t, v, nil, nil, storage.AOptions{})
	switch {
	case err == nil:
		a.appended++
	case errors.Is(err, storage.ErrTooOldSample):
		a.tooOld++
	case errors.Is(err, storage.ErrOutOfBounds):
		a.outOfBounds++
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		a.duplicate++
	case errors.Is(err, storage.ErrOutOfOrderSample):
		a.outOfOrder++
	default:
		return err
	}
	if ref != 0 {
		ent.ref = ref
	}
	return nil
}

// flush writes the head out as blocks and uploads every pending block, within ctx: what ctx
// leaves undone stays on the local disk for the next start, as without the flush.
func (e *objstoreExporter) flush(ctx context.Context) error {
	start := time.Now()
	maxt := e.db.Head().MaxTime()
	if err := persistHead(ctx, e.db, math.MinInt64, e.cfg.BlockDuration.Milliseconds()); err != nil {
		return fmt.Errorf("objstore exporter: writing the head out at shutdown: %w", err)
	}
	// Every sample the WAL still holds is in the blocks now: the next start's write-out skips
	// them (see replay.go).
	if maxt != math.MinInt64 {
		if err := writeTime(filepath.Join(e.cfg.Directory, headMinValidFile), maxt+1); err != nil {
			e.logger.Warn("objstore exporter: recording the head's end failed; the next start writes it out again (duplicates the compactor merges)", "err", err)
		}
	}
	if err := e.shipper.ship(ctx, e.db.Blocks()); err != nil {
		return fmt.Errorf("objstore exporter: uploading at shutdown (the rest is uploaded at the next start): %w", err)
	}
	e.logger.Info("objstore exporter: wrote the head out and uploaded every block at shutdown", "duration", time.Since(start).String())
	return nil
}
