package objstoreexporter

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/edgetel/edgetel/exporters/objstoreexporter/internal/metadata"
	"github.com/edgetel/edgetel/internal/sampleconv"
)

// telemetry holds the exporter's own metrics.
type telemetry struct {
	blocksCut, blocksUploaded, uploadFailures metric.Int64Counter
	samplesAppended, samplesDropped           metric.Int64Counter
	batchesRefused                            metric.Int64Counter
	localBlocksDropped, localSamplesDropped   metric.Int64Counter

	lagSince      atomic.Int64 // unix ms of the oldest pending block's cut, 0 when none
	replayPending atomic.Int64 // bytes of a previous run's head not yet written out as blocks

	// The gauges are observed by a callback registered from Start to Shutdown, so a stopped
	// exporter neither reports nor holds its closed TSDB head.
	meter        metric.Meter
	uploadLag    metric.Float64ObservableGauge
	headSeries   metric.Int64ObservableGauge
	replayBytes  metric.Int64ObservableGauge
	registration metric.Registration
	head         *tsdb.Head // the open head while registered, for tests
}

var (
	reasonTooOld      = metric.WithAttributes(attribute.String("reason", "too_old"))
	reasonOutOfBounds = metric.WithAttributes(attribute.String("reason", "out_of_bounds"))
	reasonDuplicate   = metric.WithAttributes(attribute.String("reason", "duplicate"))
	reasonOutOfOrder  = metric.WithAttributes(attribute.String("reason", "out_of_order"))
	reasonUnsupported = metric.WithAttributes(attribute.String("reason", "unsupported"))
	reasonFuture      = metric.WithAttributes(attribute.String("reason", sampleconv.ReasonClockSkew))

	// Why a batch was refused (batches_refused).
	reasonStalled    = metric.WithAttributes(attribute.String("reason", "stalled"))
	reasonBusy       = metric.WithAttributes(attribute.String("reason", "busy"))
	reasonDiskFull   = metric.WithAttributes(attribute.String("reason", "disk_full"))
	reasonWriteError = metric.WithAttributes(attribute.String("reason", "write_error"))
)

// Why a block never uploaded left local disk (local_blocks_dropped).
const (
	dropMaxBytes = "max_bytes"
	dropMaxAge   = "max_age"
	dropDiskFull = "disk_full"
)

const replayPendingDesc = "Bytes on disk of a previous run's head (WAL and head chunks) not yet written out as blocks; " +
	"above 0 while the replay runs in the background after a start."

func newTelemetry(mp metric.MeterProvider) (*telemetry, error) {
	m := mp.Meter(metadata.ScopeName)
	t := &telemetry{}
	var err error
	counter := func(name, desc, unit string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		return c
	}
	t.blocksCut = counter("otelcol_exporter_objstore_blocks_cut", "TSDB blocks cut from the local head.", "{block}")
	t.blocksUploaded = counter("otelcol_exporter_objstore_blocks_uploaded", "Blocks uploaded to the bucket (meta.json written).", "{block}")
	t.uploadFailures = counter("otelcol_exporter_objstore_upload_failures", "Failed block upload attempts (the block is retried).", "{attempt}")
	t.samplesAppended = counter("otelcol_exporter_objstore_samples_appended", "Samples appended to the local TSDB.", "{sample}")
	t.samplesDropped = counter("otelcol_exporter_objstore_samples_dropped", "Samples dropped, by reason (too_old, out_of_bounds, duplicate, out_of_order, clock_skew, unsupported).", "{sample}")
	t.batchesRefused = counter("otelcol_exporter_objstore_batches_refused",
		"Batches refused without being stored, by reason (stalled, busy, disk_full, write_error).", "{batch}")
	t.localBlocksDropped = counter("otelcol_exporter_objstore_local_blocks_dropped",
		"Blocks deleted from local disk before they were uploaded, by reason (max_bytes, max_age, disk_full).", "{block}")
	t.localSamplesDropped = counter("otelcol_exporter_objstore_local_samples_dropped",
		"Samples in blocks deleted from local disk before they were uploaded, by reason.", "{sample}")
	if err != nil {
		return nil, err
	}
	t.meter = m
	t.uploadLag, err = m.Float64ObservableGauge("otelcol_exporter_objstore_upload_lag",
		metric.WithDescription("Age of the oldest cut block not yet uploaded, 0 when none waits."), metric.WithUnit("s"))
	if err != nil {
		return nil, err
	}
	t.headSeries, err = m.Int64ObservableGauge("otelcol_exporter_objstore_head_series",
		metric.WithDescription("Series in the local TSDB head."), metric.WithUnit("{series}"))
	if err != nil {
		return nil, err
	}
	t.replayBytes, err = m.Int64ObservableGauge("otelcol_exporter_objstore_replay_pending",
		metric.WithDescription(replayPendingDesc), metric.WithUnit("By"))
	if err != nil {
		return nil, err
	}
	return t, nil
}

// observe starts reporting the gauges, from head while it is open; Start calls it.
func (t *telemetry) observe(head *tsdb.Head) error {
	t.head = head
	reg, err := t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		lag := 0.0
		if since := t.lagSince.Load(); since != 0 {
			lag = time.Since(time.UnixMilli(since)).Seconds()
		}
		o.ObserveFloat64(t.uploadLag, lag)
		o.ObserveInt64(t.headSeries, int64(head.NumSeries()))
		o.ObserveInt64(t.replayBytes, t.replayPending.Load())
		return nil
	}, t.uploadLag, t.headSeries, t.replayBytes)
	if err != nil {
		return fmt.Errorf("registering telemetry callbacks: %w", err)
	}
	t.registration = reg
	return nil
}

// stop unregisters the gauges' callback and lets go of the closed head; Shutdown calls it.
func (t *telemetry) stop() error {
	t.head = nil
	if t.registration == nil {
		return nil
	}
	err := t.registration.Unregister()
	t.registration = nil
	return err
}

func (t *telemetry) setLag(oldestPending time.Time) {
	if oldestPending.IsZero() {
		t.lagSince.Store(0)
		return
	}
	t.lagSince.Store(oldestPending.UnixMilli())
}

func (t *telemetry) recordAppend(ctx context.Context, a *tsdbAppender, unsupported int) {
	t.samplesAppended.Add(ctx, a.appended)
	for _, d := range []struct {
		n   int64
		opt metric.AddOption
	}{{a.tooOld, reasonTooOld}, {a.outOfBounds, reasonOutOfBounds}, {a.duplicate, reasonDuplicate}, {a.outOfOrder, reasonOutOfOrder}, {a.future, reasonFuture}, {int64(unsupported), reasonUnsupported}} {
		if d.n > 0 {
			t.samplesDropped.Add(ctx, d.n, d.opt)
		}
	}
}

func (t *telemetry) recordLocalDrop(ctx context.Context, reason string, samples uint64) {
	opt := metric.WithAttributes(attribute.String("reason", reason))
	t.localBlocksDropped.Add(ctx, 1, opt)
	t.localSamplesDropped.Add(ctx, int64(samples), opt)
}
