// Package metadata holds what mdatagen would generate from metadata.yaml (mdatagen cannot be
// installed here, so this file is written by hand and must follow metadata.yaml).
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
