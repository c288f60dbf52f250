package sampleconv

import (
	"fmt"
	"maps"
	"regexp"
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
	// ResourceConstantLabels selects the resource attributes that become labels otherwise, as
	// the key of that name in contrib's prometheus_remote_write exporter. By default
	// (DefaultResourceLabels) those the kubeedge receiver carries its target labels in.
	ResourceConstantLabels ResourceLabelsConfig `mapstructure:"resource_constant_labels"`
	// ExternalLabels identify the writer: added to every series (remote write) or to every
	// block's thanos.labels (objstore).
	ExternalLabels map[string]string `mapstructure:"external_labels"`
}

// ResourceToTelemetryConfig is the Collector contrib's resource_to_telemetry_conversion block.
type ResourceToTelemetryConfig struct {
	Enabled bool `mapstructure:"enabled"`
}

// ResourceLabelsConfig is contrib's resource_constant_labels block: resource attribute keys,
// as patterns where "*" matches any run of characters and "?" one character. An attribute
// becomes a label when it matches Included and not Excluded; with Included empty and Excluded
// set, every attribute not excluded does.
type ResourceLabelsConfig struct {
	Included []string `mapstructure:"included"`
	Excluded []string `mapstructure:"excluded"`
}

// DefaultResourceLabels are the resource attributes the kubeedge receiver puts its target
// labels in with its default attributes.labels: node, metrics_path and the mapped node labels
// region and site.
func DefaultResourceLabels() ResourceLabelsConfig {
	return ResourceLabelsConfig{Included: []string{"node", "metrics_path", "region", "site"}}
}

// DefaultOutputConfig is the output config the exporters start from.
func DefaultOutputConfig() OutputConfig {
	return OutputConfig{ResourceConstantLabels: DefaultResourceLabels()}
}

// Options are the converter options the output config asks for.
func (o OutputConfig) Options() Options {
	return Options{ResourceToLabels: o.ResourceToTelemetry.Enabled, WithoutSuffixes: !o.AddMetricSuffixes,
		ResourceLabels: o.ResourceConstantLabels, ExternalLabels: slices.Sorted(maps.Keys(o.ExternalLabels))}
}

// matcher tells which resource attribute keys a ResourceLabelsConfig selects.
type matcher struct {
	included, excluded []pattern
}

// pattern is an exact key, or a glob when re is set.
type pattern struct {
	key string
	re  *regexp.Regexp
}

func newMatcher(c ResourceLabelsConfig) *matcher {
	return &matcher{included: patterns(c.Included), excluded: patterns(c.Excluded)}
}

func patterns(list []string) []pattern {
	out := make([]pattern, 0, len(list))
	for _, p := range list {
		if !strings.ContainsAny(p, "*?") {
			out = append(out, pattern{key: p})
			continue
		}
		// As contrib: "*" and "?" cannot be escaped, everything else is literal.
		expr := strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(p))
		out = append(out, pattern{re: regexp.MustCompile("(?s)^" + expr + "$")})
	}
	return out
}

func (m *matcher) match(key string) bool {
	if anyMatch(m.excluded, key) {
		return false
	}
	if len(m.included) == 0 {
		return len(m.excluded) > 0
	}
	return anyMatch(m.included, key)
}

func anyMatch(ps []pattern, key string) bool {
	for _, p := range ps {
		if (p.re == nil && p.key == key) || (p.re != nil && p.re.MatchString(key)) {
			return true
		}
	}
	return false
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
