// Package metadata is the component's status as metadata.yaml states it (type, stability, scope
// name), written by hand in the shape mdatagen gives it. TestStatusAndSelfMetricsMatchMetadata
// (internal/testing/telemetrytest) fails when it drifts from metadata.yaml.
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	Type      = component.MustNewType("edgenode")
	ScopeName = "github.com/edgetel/edgetel/processors/edgenodeprocessor"
)

const (
	MetricsStability = component.StabilityLevelAlpha
	LogsStability    = component.StabilityLevelAlpha
	TracesStability  = component.StabilityLevelAlpha
)
