// Package metadata holds what mdatagen would generate from metadata.yaml (mdatagen cannot be
// installed here, so this file is written by hand and must follow metadata.yaml).
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
