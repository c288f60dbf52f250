// Package metadata is the component's status as metadata.yaml states it (type, stability, scope
// name), written by hand in the shape mdatagen gives it. TestStatusAndSelfMetricsMatchMetadata
// (internal/testing/telemetrytest) fails when it drifts from metadata.yaml.
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
