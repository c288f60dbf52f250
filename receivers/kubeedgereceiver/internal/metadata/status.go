// Package metadata is the component's status as metadata.yaml states it (type, stability, scope
// name), written by hand in the shape mdatagen gives it. TestStatusAndSelfMetricsMatchMetadata
// (internal/testing/telemetrytest) fails when it drifts from metadata.yaml.
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	// Type is the receiver's component type.
	Type = component.MustNewType("kubeedge")
	// ScopeName is the instrumentation scope of the receiver's data and self-metrics.
	ScopeName = "github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

// MetricsStability is the stability of the metrics signal.
const MetricsStability = component.StabilityLevelDevelopment

// LogsStability is the stability of the logs signal.
const LogsStability = component.StabilityLevelDevelopment
