// Package metadata holds what mdatagen would generate from metadata.yaml. mdatagen cannot be
// installed here, so this file is written by hand and must be kept in step with metadata.yaml.
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
