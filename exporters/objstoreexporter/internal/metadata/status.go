// Package metadata is the component's status as metadata.yaml states it (type, stability, scope
// name), written by hand in the shape mdatagen gives it. TestStatusAndSelfMetricsMatchMetadata
// (internal/testing/telemetrytest) fails when it drifts from metadata.yaml.
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	// Type is the exporter's component type.
	Type = component.MustNewType("objstore")
	// ScopeName is the instrumentation scope of the exporter's self-metrics.
	ScopeName = "github.com/edgetel/edgetel/exporters/objstoreexporter"
)

// MetricsStability is the stability of the metrics signal.
const MetricsStability = component.StabilityLevelDevelopment
