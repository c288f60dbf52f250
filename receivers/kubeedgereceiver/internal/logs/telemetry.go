package logs

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// Reasons a log line is dropped (otelcol_receiver_kubeedge_log_lines_dropped).
const (
	// reasonMalformed: the line has no kubelet timestamp (e.g. an error text relayed as a 200).
	reasonMalformed = "malformed"
	// reasonConsumerPermanent: the pipeline refused the batch with a permanent error.
	reasonConsumerPermanent = "consumer_permanent"
)

// logsTelemetry is the logs signal's own metrics.
type logsTelemetry struct {
	lines, duplicates, truncated, events metric.Int64Counter
	droppedLines, streamEnds             metric.Int64Counter
	consumeErrors, positionErrors        metric.Int64Counter
	streams                              metric.Int64Gauge
	open                                 metric.Int64UpDownCounter
}

func newLogsTelemetry(set component.TelemetrySettings) (*logsTelemetry, error) {
	m := set.MeterProvider.Meter(metadata.ScopeName)
	t := &logsTelemetry{}
	counters := []struct {
		dst              *metric.Int64Counter
		name, desc, unit string
	}{
		{&t.lines, "otelcol_receiver_kubeedge_log_lines", "Container log lines the pipeline accepted.", "{line}"},
		{&t.events, "otelcol_receiver_kubeedge_lifecycle_events", "Node lifecycle records the pipeline accepted.", "{event}"},
		{&t.duplicates, "otelcol_receiver_kubeedge_log_lines_duplicate", "Lines skipped because a resumed stream repeated them (sinceTime has whole seconds).", "{line}"},
		{&t.truncated, "otelcol_receiver_kubeedge_log_lines_truncated", "Lines longer than logs.max_line_size, cut to it (their records carry log.record.truncated).", "{line}"},
		{&t.droppedLines, "otelcol_receiver_kubeedge_log_lines_dropped", "Lines and lifecycle records dropped, by reason (malformed, consumer_permanent, lifecycle_overflow).", "{line}"},
		{&t.streamEnds, "otelcol_receiver_kubeedge_log_stream_ends", "Log streams that ended and are reopened, by reason (eof, cut, idle_timeout for a stream that brought nothing for logs.idle_timeout, empty_body for a cloudcore holding a closed session, timeout, dns, transport, http_status).", "{stream}"},
		{&t.consumeErrors, "otelcol_receiver_kubeedge_log_consume_errors", "Batches of lines the pipeline refused for now; they are offered again.", "{batch}"},
		{&t.positionErrors, "otelcol_receiver_kubeedge_log_position_errors", "Stream positions that could not be saved or read.", "{error}"},
	}
	var err error
	for _, c := range counters {
		if *c.dst, err = m.Int64Counter(c.name, metric.WithDescription(c.desc), metric.WithUnit(c.unit)); err != nil {
			return nil, err
		}
	}
	if t.streams, err = m.Int64Gauge("otelcol_receiver_kubeedge_log_streams",
		metric.WithDescription("Log streams followed (containers, or their stdout and stderr)."), metric.WithUnit("{stream}")); err != nil {
		return nil, err
	}
	if t.open, err = m.Int64UpDownCounter("otelcol_receiver_kubeedge_log_streams_open",
		metric.WithDescription("Log streams open now (at most logs.max_streams)."), metric.WithUnit("{stream}")); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *logsTelemetry) dropped(reason string, n int) {
	t.droppedLines.Add(context.Background(), int64(n), metric.WithAttributes(attribute.String("reason", reason)))
}

func (t *logsTelemetry) streamEnd(reason string) {
	t.streamEnds.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
}
