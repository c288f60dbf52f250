package sampleconv

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
)

// OutputConfig is how an exporter that writes Prometheus data names and labels its series. The
// remote-write and objstore exporters both embed it with `mapstructure:",squash"`, so the keys
// and their meaning are the same in both.
type OutputConfig struct {
	// AddMetricSuffixes appends "_total" to monotonic sums that lack it. Off by default: the
	// kubeedge receiver delivers the names it scraped, and text-format counters need not end in
	// _total.
	AddMetricSuffixes bool `mapstructure:"add_metric_suffixes"`
	// ResourceToTelemetry copies every resource attribute to a label, besides job and instance.
	ResourceToTelemetry ResourceToTelemetryConfig `mapstructure:"resource_to_telemetry_conversion"`
	// ExternalLabels identify the writer: added to every series (remote write) or to every
	// block's thanos.labels (objstore).
	ExternalLabels map[string]string `mapstructure:"external_labels"`
}

// ResourceToTelemetryConfig is the Collector contrib's resource_to_telemetry_conversion block.
type ResourceToTelemetryConfig struct {
	Enabled bool `mapstructure:"enabled"`
}

// Options are the converter options the output config asks for.
func (o OutputConfig) Options() Options {
	return Options{ResourceToLabels: o.ResourceToTelemetry.Enabled, WithoutSuffixes: !o.AddMetricSuffixes,
		ExternalLabels: slices.Sorted(maps.Keys(o.ExternalLabels))}
}

// ValidateExternalLabels is the one check of external labels: every name a valid Prometheus
// label name that is not reserved (no "__" prefix), every value non-empty (an empty label is no
// label in Prometheus). Names are checked in sorted order, so the error is stable.
func (o OutputConfig) ValidateExternalLabels() error {
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(o.ExternalLabels)) {
		v := o.ExternalLabels[k]
		if !model.LegacyValidation.IsValidLabelName(k) || strings.HasPrefix(k, "__") || v == "" {
			bad = append(bad, fmt.Sprintf("%q=%q", k, v))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("external_labels: %s: names must be valid Prometheus label names not starting with __, and values non-empty",
			strings.Join(bad, ", "))
	}
	return nil
}
