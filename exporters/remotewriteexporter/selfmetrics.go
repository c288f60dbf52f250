package remotewriteexporter

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/edgetel/edgetel/exporters/remotewriteexporter/internal/metadata"
)

// Drop reasons besides the buffer's own (diskqueue.ReasonMaxBytes, ReasonMaxAge, ReasonCorrupt).
const (
	reasonRejected    = "rejected"    // series the remote end refused as bad data (400, 409, 422), isolated by splitting
	reasonUnsupported = "unsupported" // no Prometheus form: delta temporality, exponential histograms
	reasonTooLarge    = "too_large"   // larger than buffer.max_bytes, or a single series the remote end answers 413 for
	reasonRelabeled   = "relabeled"   // series write_relabel_configs dropped
)

// Send outcomes.
const (
	outcomeSuccess  = "success"
	outcomeRetry    = "retry"
	outcomeRejected = "rejected"
)

type telemetry struct {
	buffered       metric.Int64Counter
	sent           metric.Int64Counter
	retried        metric.Int64Counter
	dropped        metric.Int64Counter
	droppedRecords metric.Int64Counter
	latency        metric.Float64Histogram
	refusedReqs    metric.Int64Counter
	registration   metric.Registration
	meter          metric.Meter
	pending, disk  metric.Int64ObservableGauge
	capacity       metric.Int64ObservableGauge
	age            metric.Float64ObservableGauge
	held           metric.Int64ObservableGauge
	outcome        map[string]metric.RecordOption

	// Totals kept for tests and benchmarks, which read them without a metrics SDK.
	sentTotal    atomic.Int64
	droppedTotal atomic.Int64
	refusedTotal atomic.Int64
}

// gauges supplies the observable gauges' values.
type gauges interface {
	bufferBytes() (pending, disk int64)
	bufferMaxBytes() int64
	oldestAgeSeconds() float64
	sendingHeld() bool
}

// bufferMaxBytes is buffer.max_bytes, exported so that an alert can compare the buffer's fill
// with its bound.
func (e *rwExporter) bufferMaxBytes() int64 { return e.cfg.Buffer.MaxBytes }

// newTelemetry creates the instruments; observe starts the gauges once their source exists.
func newTelemetry(mp metric.MeterProvider) (*telemetry, error) {
	m := mp.Meter(metadata.ScopeName)
	t := &telemetry{outcome: map[string]metric.RecordOption{}}
	for _, o := range []string{outcomeSuccess, outcomeRetry, outcomeRejected} {
		t.outcome[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o)))
	}
	var errs, err error
	t.buffered, err = m.Int64Counter("otelcol_exporter_edgeremotewrite_samples_buffered", metric.WithUnit("{sample}"),
		metric.WithDescription("Samples written to the buffer."))
	errs = errors.Join(errs, err)
	t.sent, err = m.Int64Counter("otelcol_exporter_edgeremotewrite_samples_sent", metric.WithUnit("{sample}"),
		metric.WithDescription("Samples acknowledged by the remote end."))
	errs = errors.Join(errs, err)
	t.retried, err = m.Int64Counter("otelcol_exporter_edgeremotewrite_samples_retried", metric.WithUnit("{sample}"),
		metric.WithDescription("Samples in requests that failed with a retryable error and were sent again."))
	errs = errors.Join(errs, err)
	t.dropped, err = m.Int64Counter("otelcol_exporter_edgeremotewrite_samples_dropped", metric.WithUnit("{sample}"),
		metric.WithDescription("Samples given up on, by reason (max_bytes, max_age, disk_full, corrupt, rejected, unsupported, too_large, relabeled; see the README)."))
	errs = errors.Join(errs, err)
	t.droppedRecords, err = m.Int64Counter("otelcol_exporter_edgeremotewrite_records_dropped", metric.WithUnit("{record}"),
		metric.WithDescription("Buffer records given up on, by reason; corrupt records whose sample count is unreadable count here only."))
	errs = errors.Join(errs, err)
	t.latency, err = m.Float64Histogram("otelcol_exporter_edgeremotewrite_send_duration_seconds", metric.WithUnit("s"),
		metric.WithDescription("Duration of remote-write requests, by outcome (success, retry, rejected)."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	errs = errors.Join(errs, err)
	t.refusedReqs, err = m.Int64Counter("otelcol_exporter_edgeremotewrite_requests_refused", metric.WithUnit("{request}"),
		metric.WithDescription("Requests the remote end answered with an error status that keeps the data (429, 5xx retried with backoff; 401, 403, 404 and other 4xx held and probed), by status_code."))
	errs = errors.Join(errs, err)
	pending, err := m.Int64ObservableGauge("otelcol_exporter_edgeremotewrite_buffer_bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes in the on-disk buffer not yet acknowledged by the remote end."))
	errs = errors.Join(errs, err)
	disk, err := m.Int64ObservableGauge("otelcol_exporter_edgeremotewrite_buffer_disk_bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes of the buffer's segment files on disk (bounded by buffer.max_bytes)."))
	errs = errors.Join(errs, err)
	capacity, err := m.Int64ObservableGauge("otelcol_exporter_edgeremotewrite_buffer_max_bytes", metric.WithUnit("By"),
		metric.WithDescription("The buffer's bound on disk (buffer.max_bytes); past it the oldest data is dropped."))
	errs = errors.Join(errs, err)
	age, err := m.Float64ObservableGauge("otelcol_exporter_edgeremotewrite_oldest_sample_age_seconds", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest sample buffered and not yet acknowledged (0 when empty)."))
	errs = errors.Join(errs, err)
	held, err := m.Int64ObservableGauge("otelcol_exporter_edgeremotewrite_sending_held", metric.WithUnit("1"),
		metric.WithDescription("1 while the remote end refuses our requests (401, 403, 404, other 4xx not about the data); the data is kept and one probe goes out per retry_on_failure.max_interval."))
	errs = errors.Join(errs, err)
	if errs != nil {
		return nil, errs
	}
	t.meter, t.pending, t.disk, t.capacity, t.age, t.held = m, pending, disk, capacity, age, held
	return t, nil
}

func (t *telemetry) observe(g gauges) error {
	var err error
	t.registration, err = t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		p, d := g.bufferBytes()
		o.ObserveInt64(t.pending, p)
		o.ObserveInt64(t.disk, d)
		o.ObserveInt64(t.capacity, g.bufferMaxBytes())
		o.ObserveFloat64(t.age, g.oldestAgeSeconds())
		var held int64
		if g.sendingHeld() {
			held = 1
		}
		o.ObserveInt64(t.held, held)
		return nil
	}, t.pending, t.disk, t.capacity, t.age, t.held)
	return err
}

func (t *telemetry) drop(reason string, records, samples int) {
	set := metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", reason)))
	t.dropped.Add(context.Background(), int64(samples), set)
	t.droppedRecords.Add(context.Background(), int64(records), set)
	t.droppedTotal.Add(int64(samples))
}

// refused counts an answer that keeps the data: 401/403 say the remote end refuses our
// credentials, 404 a wrong endpoint, 429/5xx an overloaded or broken remote end.
func (t *telemetry) refused(status int) {
	t.refusedReqs.Add(context.Background(), 1,
		metric.WithAttributeSet(attribute.NewSet(attribute.String("status_code", strconv.Itoa(status)))))
	t.refusedTotal.Add(1)
}

func (t *telemetry) shutdown() {
	if t.registration != nil {
		_ = t.registration.Unregister()
	}
}
