package kubeedgereceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/edgetel/edgetel/internal/sampleconv"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// telemetry is the receiver's own metrics, through the Collector's MeterProvider.
type telemetry struct {
	scrapes  metric.Int64Counter
	failures metric.Int64Counter
	samples  metric.Int64Counter
	dropped  metric.Int64Counter
	stale    metric.Int64Counter
	refused  metric.Int64Counter
	targets  metric.Int64Gauge
	bodies   metric.Int64Gauge

	roundsLate, roundsMissed metric.Int64Counter
}

func newTelemetry(set component.TelemetrySettings) (*telemetry, error) {
	m := set.MeterProvider.Meter(metadata.ScopeName)
	t := &telemetry{}
	var err error
	if t.scrapes, err = m.Int64Counter("otelcol_receiver_kubeedge_scrapes",
		metric.WithDescription("Scrapes of node endpoints, by result (success, failure)."), metric.WithUnit("{scrape}")); err != nil {
		return nil, err
	}
	if t.failures, err = m.Int64Counter("otelcol_receiver_kubeedge_scrape_failures",
		metric.WithDescription("Failed scrapes, by reason."), metric.WithUnit("{scrape}")); err != nil {
		return nil, err
	}
	if t.samples, err = m.Int64Counter("otelcol_receiver_kubeedge_samples",
		metric.WithDescription("Samples scraped and kept."), metric.WithUnit("{sample}")); err != nil {
		return nil, err
	}
	if t.dropped, err = m.Int64Counter("otelcol_receiver_kubeedge_samples_dropped",
		metric.WithDescription("Samples dropped (relabelled away, duplicated, unsupported, or in a failed scrape); with reason clock_skew, samples refused for a timestamp beyond max_future_skew."), metric.WithUnit("{sample}")); err != nil {
		return nil, err
	}
	if t.stale, err = m.Int64Counter("otelcol_receiver_kubeedge_stale_markers",
		metric.WithDescription("Staleness markers sent for series that ended."), metric.WithUnit("{series}")); err != nil {
		return nil, err
	}
	if t.refused, err = m.Int64Counter("otelcol_receiver_kubeedge_consume_errors",
		metric.WithDescription("Batches the next consumer refused."), metric.WithUnit("{batch}")); err != nil {
		return nil, err
	}
	if t.targets, err = m.Int64Gauge("otelcol_receiver_kubeedge_nodes",
		metric.WithDescription("Edge nodes this replica scrapes."), metric.WithUnit("{node}")); err != nil {
		return nil, err
	}
	if t.bodies, err = m.Int64Gauge("otelcol_receiver_kubeedge_body_bytes_in_flight",
		metric.WithDescription("Bytes of response bodies held now, from their fetch to the end of their conversion (bounded by max_body_bytes_in_flight)."), metric.WithUnit("By")); err != nil {
		return nil, err
	}
	if t.roundsLate, err = m.Int64Counter("otelcol_receiver_kubeedge_rounds_late",
		metric.WithDescription("Scrape rounds of a node that started after their time because the round before ran past it, by reason (concurrency_limit, pipeline, slow_endpoints)."),
		metric.WithUnit("{round}")); err != nil {
		return nil, err
	}
	if t.roundsMissed, err = m.Int64Counter("otelcol_receiver_kubeedge_rounds_missed",
		metric.WithDescription("Scrape rounds of a node skipped because the round before ran past them, by reason (concurrency_limit, pipeline, slow_endpoints)."),
		metric.WithUnit("{round}")); err != nil {
		return nil, err
	}
	return t, nil
}

// Reasons for a late or missed round (see nodeLoop.overrunReason).
var (
	reasonConcurrencyLimit = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "concurrency_limit")))
	reasonPipeline         = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "pipeline")))
	reasonSlowEndpoints    = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "slow_endpoints")))
)

var (
	resultSuccess = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "success")))
	resultFailure = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "failure")))
)

func (t *telemetry) scrape(ok bool, kept, dropped, stale int) {
	ctx := context.Background()
	if ok {
		t.scrapes.Add(ctx, 1, resultSuccess)
	} else {
		t.scrapes.Add(ctx, 1, resultFailure)
	}
	t.samples.Add(ctx, int64(kept))
	t.dropped.Add(ctx, int64(dropped))
	t.stale.Add(ctx, int64(stale))
}

var reasonClockSkew = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", sampleconv.ReasonClockSkew)))

// clockSkew counts samples refused for a timestamp beyond max_future_skew.
func (t *telemetry) clockSkew(n int) {
	if n > 0 {
		t.dropped.Add(context.Background(), int64(n), reasonClockSkew)
	}
}

func (t *telemetry) failure(reason string) {
	t.failures.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func (t *telemetry) setTargets(n int) { t.targets.Record(context.Background(), int64(n)) }

func (t *telemetry) setBodyBytes(n int64) { t.bodies.Record(context.Background(), n) }
