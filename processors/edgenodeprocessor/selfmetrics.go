package edgenodeprocessor

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/metadata"
)

// Outcomes of looking up a resource's node, the values of the "outcome" attribute.
const (
	outcomeEnriched   = "enriched"
	outcomeUnknown    = "unknown_node"
	outcomeNoIdentity = "no_identity"
)

// untrackedMetric stands in for metric names that never had an admitted series on the node, so a
// flood of new metric names cannot flood the Collector's own telemetry.
const untrackedMetric = "_untracked"

type telemetry struct {
	resources    metric.Int64Counter
	droppedSer   metric.Int64Counter
	droppedPts   metric.Int64Counter
	outcomeAttrs map[string]metric.AddOption
	registration metric.Registration
}

func newTelemetry(set component.TelemetrySettings, activeSeries, nodes func() int64) (*telemetry, error) {
	meter := set.MeterProvider.Meter(metadata.ScopeName)
	var errs error
	t := &telemetry{outcomeAttrs: map[string]metric.AddOption{}}
	var err error
	t.resources, err = meter.Int64Counter("otelcol_processor_edgenode_resources",
		metric.WithDescription("Resources seen, by outcome (enriched, unknown_node, no_identity)."),
		metric.WithUnit("{resources}"))
	errs = errors.Join(errs, err)
	t.droppedSer, err = meter.Int64Counter("otelcol_processor_edgenode_dropped_series",
		metric.WithDescription("Series rejected by the cardinality guard, each counted once per window, by node and metric."),
		metric.WithUnit("{series}"))
	errs = errors.Join(errs, err)
	t.droppedPts, err = meter.Int64Counter("otelcol_processor_edgenode_dropped_data_points",
		metric.WithDescription("Data points dropped by the cardinality guard, by node and metric."),
		metric.WithUnit("{datapoints}"))
	errs = errors.Join(errs, err)
	active, err := meter.Int64ObservableGauge("otelcol_processor_edgenode_active_series",
		metric.WithDescription("Series the cardinality guard holds as active, over all nodes."),
		metric.WithUnit("{series}"))
	errs = errors.Join(errs, err)
	nodeGauge, err := meter.Int64ObservableGauge("otelcol_processor_edgenode_nodes",
		metric.WithDescription("Nodes in the metadata cache."),
		metric.WithUnit("{nodes}"))
	errs = errors.Join(errs, err)
	if errs != nil {
		return nil, fmt.Errorf("creating telemetry: %w", errs)
	}
	t.registration, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(active, activeSeries())
		o.ObserveInt64(nodeGauge, nodes())
		return nil
	}, active, nodeGauge)
	if err != nil {
		return nil, fmt.Errorf("registering telemetry callback: %w", err)
	}
	for _, o := range []string{outcomeEnriched, outcomeUnknown, outcomeNoIdentity} {
		t.outcomeAttrs[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", o)))
	}
	return t, nil
}

func (t *telemetry) recordOutcomes(ctx context.Context, c outcomeCounts) {
	if c.enriched > 0 {
		t.resources.Add(ctx, c.enriched, t.outcomeAttrs[outcomeEnriched])
	}
	if c.unknown > 0 {
		t.resources.Add(ctx, c.unknown, t.outcomeAttrs[outcomeUnknown])
	}
	if c.noIdentity > 0 {
		t.resources.Add(ctx, c.noIdentity, t.outcomeAttrs[outcomeNoIdentity])
	}
}

func (t *telemetry) recordDrops(ctx context.Context, node string, drops []metricDrops) {
	for _, d := range drops {
		attrs := metric.WithAttributeSet(attribute.NewSet(
			attribute.String("node", node), attribute.String("metric", d.attr)))
		if d.series > 0 {
			t.droppedSer.Add(ctx, d.series, attrs)
		}
		t.droppedPts.Add(ctx, d.points, attrs)
	}
}

func (t *telemetry) shutdown() error {
	if t == nil || t.registration == nil {
		return nil
	}
	return t.registration.Unregister()
}

type outcomeCounts struct {
	enriched, unknown, noIdentity int64
}
