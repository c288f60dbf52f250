// Package metadata holds what mdatagen would generate from ../../metadata.yaml; mdatagen is not
// installable here, so it is written by hand and kept in step with metadata.yaml.
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	// Type is the component type in collector configuration.
	Type = component.MustNewType("edgeremotewrite")
	// ScopeName is the instrumentation scope of the exporter's own metrics.
	ScopeName = "github.com/edgetel/edgetel/exporters/remotewriteexporter"
)

const (
	// MetricsStability is the stability of the metrics exporter.
	MetricsStability = component.StabilityLevelAlpha
)
