// Package telemetrytest checks a component's status and self-metrics against its metadata.yaml.
// edgetel's components write by hand what mdatagen would generate (internal/metadata/status.go
// and selfmetrics.go); these checks keep the two from drifting apart.
package telemetrytest

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sigsyaml "sigs.k8s.io/yaml"
)

// Instrument is what a component declared when it created one of its metrics.
type Instrument struct {
	// Kind is "sum" (monotonic), "updown" (a non-monotonic sum), "gauge" or "histogram".
	Kind string
	// ValueType is "int" or "double".
	ValueType   string
	Description string
	Unit        string
}

// Recorder is a MeterProvider that remembers every instrument created through it, whether or
// not anything is ever recorded on it (an SDK reader exports only instruments with data).
type Recorder struct {
	noop.MeterProvider

	mu sync.Mutex
	// instruments are by meter (instrumentation scope) name, then by instrument name.
	instruments map[string]map[string]Instrument
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{instruments: map[string]map[string]Instrument{}} }

// TelemetrySettings are nop settings whose MeterProvider is r.
func (r *Recorder) TelemetrySettings() component.TelemetrySettings {
	set := componenttest.NewNopTelemetrySettings()
	set.MeterProvider = r
	return set
}

// Meter returns a meter that records into r.
func (r *Recorder) Meter(scope string, _ ...metric.MeterOption) metric.Meter {
	return &meter{r: r, scope: scope}
}

// Instruments returns what was created through the meter of scope, by name: a component's own
// metrics come from the meter named by its metadata.ScopeName, the helpers' (exporterhelper,
// receiverhelper) from theirs.
func (r *Recorder) Instruments(scope string) map[string]Instrument {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Instrument, len(r.instruments[scope]))
	for k, v := range r.instruments[scope] {
		out[k] = v
	}
	return out
}

func (r *Recorder) add(scope, name, kind, valueType, desc, unit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.instruments[scope] == nil {
		r.instruments[scope] = map[string]Instrument{}
	}
	r.instruments[scope][name] = Instrument{Kind: kind, ValueType: valueType, Description: desc, Unit: unit}
}

// metadataFile is the part of metadata.yaml (mdatagen's schema) checked here.
type metadataFile struct {
	Type   string `json:"type"`
	Status struct {
		Stability map[string][]string `json:"stability"`
	} `json:"status"`
	Telemetry struct {
		Metrics map[string]struct {
			Description string `json:"description"`
			Unit        string `json:"unit"`
			Sum         *struct {
				ValueType string `json:"value_type"`
				Monotonic bool   `json:"monotonic"`
			} `json:"sum"`
			Gauge *struct {
				ValueType string `json:"value_type"`
			} `json:"gauge"`
			Histogram *struct {
				ValueType string `json:"value_type"`
			} `json:"histogram"`
		} `json:"metrics"`
	} `json:"telemetry"`
}

// Status is a component's hand-written status: its type and each signal's stability.
type Status struct {
	Type      component.Type
	Stability map[string]component.StabilityLevel
}

// CheckStatus fails when status differs from the type and stability in metadata.yaml at path.
func CheckStatus(t *testing.T, path string, status Status) {
	t.Helper()
	md := readMetadata(t, path)
	assert.Equal(t, md.Type, status.Type.String(), "%s: type", path)
	want := map[string]component.StabilityLevel{}
	for level, signals := range md.Status.Stability {
		var l component.StabilityLevel
		require.NoError(t, l.UnmarshalText([]byte(level)), "%s: stability %q", path, level)
		for _, s := range signals {
			want[s] = l
		}
	}
	assert.Equal(t, want, status.Stability, "%s: stability by signal", path)
}

// CheckMetrics fails when the instruments the component created differ from the telemetry
// metrics metadata.yaml at path lists: a name on one side only, or another description, unit,
// kind or value type.
func CheckMetrics(t *testing.T, path string, got map[string]Instrument) {
	t.Helper()
	md := readMetadata(t, path)
	require.NotEmpty(t, md.Telemetry.Metrics, "%s lists no telemetry metrics", path)
	for _, d := range metricsDiff(md, got) {
		t.Errorf("%s: %s", path, d)
	}
}

// metricsDiff says how got differs from md's telemetry metrics, one line per difference.
func metricsDiff(md metadataFile, got map[string]Instrument) []string {
	var diffs []string
	for name, m := range md.Telemetry.Metrics {
		w := Instrument{Description: m.Description, Unit: m.Unit}
		switch {
		case m.Sum != nil && m.Sum.Monotonic:
			w.Kind, w.ValueType = "sum", m.Sum.ValueType
		case m.Sum != nil:
			w.Kind, w.ValueType = "updown", m.Sum.ValueType
		case m.Gauge != nil:
			w.Kind, w.ValueType = "gauge", m.Gauge.ValueType
		case m.Histogram != nil:
			w.Kind, w.ValueType = "histogram", m.Histogram.ValueType
		}
		g, ok := got[name]
		switch {
		case w.Kind == "":
			diffs = append(diffs, fmt.Sprintf("%s: metadata.yaml gives no sum, gauge or histogram", name))
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: in metadata.yaml, not created by the component", name))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%s: metadata.yaml says %+v, the component creates %+v", name, w, g))
		}
	}
	for name := range got {
		if _, ok := md.Telemetry.Metrics[name]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: created by the component, missing from metadata.yaml", name))
		}
	}
	sort.Strings(diffs)
	return diffs
}

func readMetadata(t *testing.T, path string) metadataFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var md metadataFile
	require.NoError(t, sigsyaml.Unmarshal(raw, &md), path)
	return md
}
