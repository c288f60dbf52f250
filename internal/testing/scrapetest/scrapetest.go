// Package scrapetest checks scraped data the way a user sees it: it turns pmetric data back
// into Prometheus series with the Collector's own remote-write translator, and reads the
// expected series straight from an exposition with Prometheus' parser.
package scrapetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/resourcetotelemetry"
	prw "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/prometheusremotewrite"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/sampleconv"
)

// Sample is one series' value at one time.
type Sample struct {
	Value float64
	// TS is the sample's own timestamp in ms, 0 when the exposition had none.
	TS int64
}

// Series maps a series' labels (labels.String()) to its samples.
type Series map[string][]Sample

// Settings make the remote-write translator reproduce scraped names exactly: no added
// suffixes, no scope or target_info series.
var Settings = prw.Settings{AddMetricSuffixes: false, DisableScopeInfo: true, DisableTargetInfo: true}

// Appender gathers Series from the samples an edgetel exporter's conversion (sampleconv) hands
// it, in the form FromMetrics and FromExposition give.
type Appender Series

// Append adds one sample.
func (a Appender) Append(ls labels.Labels, t int64, v float64) error {
	b := labels.NewScratchBuilder(ls.Len())
	ls.Range(func(l labels.Label) { b.Add(l.Name, canonical(l.Name, l.Value)) })
	key := b.Labels().String()
	a[key] = append(a[key], Sample{Value: v, TS: t})
	return nil
}

// ResourceLabels are the resource attributes FromMetrics turns into labels, as the
// prometheus_remote_write exporter's resource_constant_labels does: the kubeedge receiver's
// target labels, as the edgetel exporters do by default.
var ResourceLabels = resourcetotelemetry.Settings{Included: sampleconv.DefaultResourceLabels().Included}

// FromMetrics translates md as the prometheus_remote_write exporter does, with
// resource_constant_labels set to ResourceLabels.
func FromMetrics(md pmetric.Metrics) (Series, error) {
	var c capture
	in := pmetric.NewMetrics()
	md.CopyTo(in)
	if err := resourcetotelemetry.WrapMetricsExporter(ResourceLabels, &c).ConsumeMetrics(context.Background(), in); err != nil {
		return nil, err
	}
	tss, err := prw.FromMetrics(c.md, Settings)
	if err != nil {
		return nil, err
	}
	out := Series{}
	for _, ts := range tss {
		b := labels.NewScratchBuilder(len(ts.Labels))
		for _, l := range ts.Labels {
			b.Add(l.Name, canonical(l.Name, l.Value))
		}
		b.Sort()
		key := b.Labels().String()
		for _, s := range ts.Samples {
			out[key] = append(out[key], Sample{Value: s.Value, TS: s.Timestamp})
		}
	}
	return out, nil
}

// capture is the exporter the contrib resource-attribute wrapper hands its output to.
type capture struct{ md pmetric.Metrics }

func (*capture) Start(context.Context, component.Host) error { return nil }
func (*capture) Shutdown(context.Context) error              { return nil }
func (*capture) Capabilities() consumer.Capabilities         { return consumer.Capabilities{} }
func (c *capture) ConsumeMetrics(_ context.Context, md pmetric.Metrics) error {
	c.md = md
	return nil
}

// FromExposition parses body as Prometheus text and adds extra labels to each series, as a
// Prometheus scrape with honor_labels: false would.
func FromExposition(body []byte, extra labels.Labels) (Series, error) {
	p, err := textparse.New(body, "text/plain", labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		return nil, err
	}
	out := Series{}
	var ls labels.Labels
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if e != textparse.EntrySeries {
			continue
		}
		_, ts, v := p.Series()
		p.Labels(&ls)
		b := labels.NewBuilder(ls)
		for _, name := range []string{"le", "quantile"} {
			if v := ls.Get(name); v != "" {
				b.Set(name, canonical(name, v))
			}
		}
		// Prometheus' honor_labels: false renames a colliding scraped label.
		extra.Range(func(l labels.Label) {
			if v := ls.Get(l.Name); v != "" {
				b.Set("exported_"+l.Name, v)
			}
			b.Set(l.Name, l.Value)
		})
		s := Sample{Value: v}
		if ts != nil {
			s.TS = *ts
		}
		key := b.Labels().String()
		out[key] = append(out[key], s)
	}
}

// Diff lists differences between want and got, at most limit of them. A got sample without an
// exposition timestamp matches any time.
func Diff(want, got Series, limit int) []string {
	var diffs []string
	add := func(format string, args ...any) {
		if len(diffs) < limit {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	for k, ws := range want {
		gs, ok := got[k]
		if !ok {
			add("missing %s", k)
			continue
		}
		if len(gs) != len(ws) {
			add("%s: %d samples, want %d", k, len(gs), len(ws))
			continue
		}
		for i := range ws {
			if !sameValue(ws[i].Value, gs[i].Value) || (ws[i].TS != 0 && ws[i].TS != gs[i].TS) {
				add("%s: got %v@%d, want %v@%d", k, gs[i].Value, gs[i].TS, ws[i].Value, ws[i].TS)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			add("unexpected %s", k)
		}
	}
	return diffs
}

// canonical formats bucket bounds and quantiles one way: Prometheus' parser writes le="25.0"
// where the translator writes le="25"; both are the same number.
func canonical(name, value string) string {
	if name != "le" && name != "quantile" {
		return value
	}
	f, err := strconv.ParseFloat(value, 64)
	if err != nil {
		return value
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func sameValue(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

// ExpositionTypes maps each family of body to its TYPE.
func ExpositionTypes(body []byte) (map[string]string, error) {
	p, err := textparse.New(body, "text/plain", labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if e == textparse.EntryType {
			name, typ := p.Type()
			out[string(name)] = string(typ)
		}
	}
}

// MetricTypes maps each metric of md to the Prometheus type it carries in its metadata.
func MetricTypes(md pmetric.Metrics, metadataKey string) map[string]string {
	out := map[string]string{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if v, ok := ms.At(k).Metadata().Get(metadataKey); ok {
					out[ms.At(k).Name()] = v.Str()
				}
			}
		}
	}
	return out
}
