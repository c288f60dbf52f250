// Package sampleconv turns OTLP metrics (pdata) into Prometheus samples the way the Collector's
// Prometheus exporters do, for every edgetel component that writes Prometheus data (the objstore
// exporter's local TSDB, remote write). One converter: do not write a second one.
//
// Rules (the Collector's Prometheus compatibility rules, restricted to what edgetel needs):
//   - job = service.namespace + "/" + service.name (or service.name alone), instance =
//     service.instance.id; with ResourceToLabels every other resource attribute becomes a label
//     too, otherwise those ResourceLabels selects (contrib's resource_constant_labels: the
//     kubeedge receiver's target labels, carried once per endpoint on its resource). A data
//     point's own attribute wins over a resource label of the same name, and its own empty
//     value removes it.
//   - Metric names are kept (the kubeedge receiver emits the names it scraped); characters outside
//     [a-zA-Z0-9_:] become "_". Monotonic cumulative sums get "_total" unless they end with it,
//     or unless Options.WithoutSuffixes is set (contrib's UnderscoreEscapingWithoutSuffixes).
//   - Gauges and non-monotonic sums are gauges; histograms are <name>_bucket{le}, <name>_sum and
//     <name>_count; summaries are <name>{quantile}, <name>_sum and <name>_count.
//   - A data point flagged NoRecordedValue becomes Prometheus' stale marker (StaleNaN) in every
//     series it would produce.
//   - Delta temporality and exponential histograms have no Prometheus float form: they are
//     skipped and counted in Stats.Unsupported.
//
// The hot path allocates nothing per sample once names, label names and bucket bounds were seen:
// label sets are built in a reused buffer and handed to the Appender, which must copy what it keeps.
package sampleconv

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Appender receives the converted samples. ls aliases a buffer the converter reuses: it is valid
// only during the call (copy it with ls.Copy() to keep it). An error stops the conversion.
type Appender interface {
	Append(ls labels.Labels, t int64, v float64) error
}

// PairsAppender is an Appender that also takes a sample's labels as a sorted slice of unique,
// non-empty pairs, which saves building a labels.Labels for an appender that only writes them
// out (the remote-write encoder). The slice is reused like ls.
type PairsAppender interface {
	Appender
	AppendPairs(ls []labels.Label, t int64, v float64) error
}

// Metadata is a metric family's type, help and unit, which RW 2.0 sends with every series.
type Metadata struct {
	Type model.MetricType // counter, gauge, histogram or summary
	Help string
	Unit string
}

// MetadataAppender is an Appender that also takes each metric's metadata before the metric's
// samples, and each data point's start time (Unix ms, 0 when unknown or for a gauge) before the
// data point's samples. The strings alias the metrics being converted.
type MetadataAppender interface {
	Appender
	SetMetadata(m Metadata)
	SetStartTime(t int64)
}

// Options select optional conversions.
type Options struct {
	// ResourceToLabels copies every resource attribute to a label (resource_to_telemetry_conversion).
	ResourceToLabels bool
	// ResourceLabels selects the resource attributes that become labels when ResourceToLabels
	// is off (contrib's resource_constant_labels).
	ResourceLabels ResourceLabelsConfig
	// WithoutSuffixes keeps monotonic sums' names as they are, without adding "_total" — for
	// data that already carries Prometheus names, such as the kubeedge receiver's: it keeps a
	// scraped counter's sample name, and counters in the text format need not end in _total
	// (kubelet's container_memory_failcnt, kubelet_pleg_discard_events). Contrib calls this
	// translation strategy UnderscoreEscapingWithoutSuffixes.
	WithoutSuffixes bool
	// ExternalLabels are the names the writer's external labels take: a series label of such a
	// name is renamed exported_<name> (as Prometheus renames a scraped label that collides with
	// a target label), so that what an edge node exposes cannot override the writer's identity
	// (cluster) in remote write, nor clash with it in a Thanos block.
	ExternalLabels []string
}

// Stats counts what one Convert call did.
type Stats struct {
	Samples int // samples handed to the Appender, stale markers included
	// Unsupported counts data points skipped: delta temporality, exponential histograms, empty metrics.
	Unsupported int
}

// Converter converts pdata metrics. It caches sanitized names between calls, so keep one per
// goroutine (it is not safe for concurrent use).
type Converter struct {
	opts    Options
	pairs   []labels.Label // labels of the current data point, before sorting
	final   []labels.Label // pairs sorted, merged and without empty values
	extra   []labels.Label // le or quantile
	builder labels.ScratchBuilder
	ls      labels.Labels
	names   map[string]*metricNames
	lnames  map[string]string
	floats  map[float64]string
	meta    MetadataAppender // the Appender of the current Convert call, if it takes metadata
	res     []labels.Label   // labels from the current resource, sorted
	pick    *matcher         // Options.ResourceLabels
}

type metricNames struct{ plain, total, bucket, sum, count string }

// Label names the converter sets.
const (
	MetricName    = model.MetricNameLabel
	JobLabel      = "job"
	InstanceLabel = "instance"
	BucketLabel   = "le"
	QuantileLabel = "quantile"
)

// New returns a Converter.
func New(opts Options) *Converter {
	return &Converter{
		opts:    opts,
		builder: labels.NewScratchBuilder(16),
		names:   map[string]*metricNames{},
		lnames:  map[string]string{},
		floats:  map[float64]string{},
		pick:    newMatcher(opts.ResourceLabels),
	}
}

// Convert hands every sample of md to app.
func (c *Converter) Convert(md pmetric.Metrics, app Appender) (Stats, error) {
	var st Stats
	c.meta, _ = app.(MetadataAppender)
	defer func() { c.meta = nil }()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		c.resourceLabels(rm.Resource().Attributes())
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if err := c.metric(ms.At(k), app, &st); err != nil {
					return st, err
				}
			}
		}
	}
	return st, nil
}

func (c *Converter) resourceLabels(attrs pcommon.Map) {
	c.res = c.res[:0]
	if name, ok := attrs.Get("service.name"); ok && name.Str() != "" {
		job := name.Str()
		if ns, ok := attrs.Get("service.namespace"); ok && ns.Str() != "" {
			job = ns.Str() + "/" + job
		}
		c.res = append(c.res, labels.Label{Name: JobLabel, Value: job})
	}
	if id, ok := attrs.Get("service.instance.id"); ok && id.Str() != "" {
		c.res = append(c.res, labels.Label{Name: InstanceLabel, Value: id.Str()})
	}
	for k, v := range attrs.All() {
		if c.opts.ResourceToLabels {
			switch k {
			case "service.name", "service.namespace", "service.instance.id":
				continue
			}
		} else if !c.pick.match(k) {
			continue
		}
		c.res = append(c.res, labels.Label{Name: c.labelName(k), Value: v.AsString()})
	}
	// Sorted once per resource, so that emit can put them in place (stable: of two that share
	// a name, the first still wins).
	slices.SortStableFunc(c.res, compareNames)
}

func (c *Converter) metric(m pmetric.Metric, app Appender, st *Stats) error {
	n := c.metricNames(m.Name())
	c.setMetadata(m)
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return c.numbers(n.plain, m.Gauge().DataPoints(), false, app, st)
	case pmetric.MetricTypeSum:
		s := m.Sum()
		if s.AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
			st.Unsupported += s.DataPoints().Len()
			return nil
		}
		name := n.plain
		if s.IsMonotonic() {
			name = n.total
		}
		return c.numbers(name, s.DataPoints(), s.IsMonotonic(), app, st)
	case pmetric.MetricTypeHistogram:
		h := m.Histogram()
		if h.AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
			st.Unsupported += h.DataPoints().Len()
			return nil
		}
		return c.histograms(n, h.DataPoints(), app, st)
	case pmetric.MetricTypeSummary:
		return c.summaries(n, m.Summary().DataPoints(), app, st)
	case pmetric.MetricTypeExponentialHistogram:
		st.Unsupported += m.ExponentialHistogram().DataPoints().Len()
	default:
		st.Unsupported++
	}
	return nil
}

// setMetadata tells a MetadataAppender the type, help and unit of m's samples. A classic
// histogram's or a summary's series (_bucket, _sum, _count) all carry the family's type, as
// Prometheus sends them.
func (c *Converter) setMetadata(m pmetric.Metric) {
	if c.meta == nil {
		return
	}
	md := Metadata{Type: model.MetricTypeGauge, Help: m.Description(), Unit: m.Unit()}
	switch m.Type() {
	case pmetric.MetricTypeSum:
		if m.Sum().IsMonotonic() {
			md.Type = model.MetricTypeCounter
		}
	case pmetric.MetricTypeHistogram:
		md.Type = model.MetricTypeHistogram
	case pmetric.MetricTypeSummary:
		md.Type = model.MetricTypeSummary
	}
	c.meta.SetMetadata(md)
}

// startTime tells a MetadataAppender the start of a cumulative data point.
func (c *Converter) startTime(t pcommon.Timestamp) {
	if c.meta != nil {
		c.meta.SetStartTime(ts(t))
	}
}

func (c *Converter) numbers(name string, dps pmetric.NumberDataPointSlice, cumulative bool, app Appender, st *Stats) error {
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		if cumulative {
			c.startTime(dp.StartTimestamp())
		} else {
			c.startTime(0)
		}
		v := dp.DoubleValue()
		if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
			v = float64(dp.IntValue())
		}
		if err := c.emit(name, dp.Attributes(), "", "", ts(dp.Timestamp()), val(v, dp.Flags()), app, st); err != nil {
			return err
		}
	}
	return nil
}

func (c *Converter) histograms(n *metricNames, dps pmetric.HistogramDataPointSlice, app Appender, st *Stats) error {
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		c.startTime(dp.StartTimestamp())
		t, attrs, fl := ts(dp.Timestamp()), dp.Attributes(), dp.Flags()
		bounds, counts := dp.ExplicitBounds(), dp.BucketCounts()
		var cum uint64
		for b := 0; b < bounds.Len() && b < counts.Len(); b++ {
			cum += counts.At(b)
			if err := c.emit(n.bucket, attrs, BucketLabel, c.float(bounds.At(b)), t, val(float64(cum), fl), app, st); err != nil {
				return err
			}
		}
		if err := c.emit(n.bucket, attrs, BucketLabel, "+Inf", t, val(float64(dp.Count()), fl), app, st); err != nil {
			return err
		}
		if dp.HasSum() {
			if err := c.emit(n.sum, attrs, "", "", t, val(dp.Sum(), fl), app, st); err != nil {
				return err
			}
		}
		if err := c.emit(n.count, attrs, "", "", t, val(float64(dp.Count()), fl), app, st); err != nil {
			return err
		}
	}
	return nil
}

func (c *Converter) summaries(n *metricNames, dps pmetric.SummaryDataPointSlice, app Appender, st *Stats) error {
	for i := 0; i < dps.Len(); i++ {
		dp := dps.At(i)
		c.startTime(dp.StartTimestamp())
		t, attrs, fl := ts(dp.Timestamp()), dp.Attributes(), dp.Flags()
		qs := dp.QuantileValues()
		for q := 0; q < qs.Len(); q++ {
			if err := c.emit(n.plain, attrs, QuantileLabel, c.float(qs.At(q).Quantile()), t, val(qs.At(q).Value(), fl), app, st); err != nil {
				return err
			}
		}
		if err := c.emit(n.sum, attrs, "", "", t, val(dp.Sum(), fl), app, st); err != nil {
			return err
		}
		if err := c.emit(n.count, attrs, "", "", t, val(float64(dp.Count()), fl), app, st); err != nil {
			return err
		}
	}
	return nil
}

// emit builds the label set of one sample (name, data point attributes, resource labels and an
// optional extra label such as le) and appends it.
func (c *Converter) emit(name string, attrs pcommon.Map, extraName, extraValue string, t int64, v float64, app Appender, st *Stats) error {
	c.pairs = append(c.pairs[:0], labels.Label{Name: MetricName, Value: name})
	sorted := true
	attrs.Range(func(k string, v pcommon.Value) bool {
		l := labels.Label{Name: c.labelName(k), Value: v.AsString()}
		sorted = sorted && l.Name >= c.pairs[len(c.pairs)-1].Name
		c.pairs = append(c.pairs, l)
		return true
	})
	extra := c.extra[:0]
	if extraName != "" {
		extra = append(extra, labels.Label{Name: extraName, Value: extraValue})
	}
	// The data point's own labels win over the resource's.
	own := attrs.Len() > 0
	if sorted {
		// Attributes usually come sorted (the kubeedge receiver writes them so): then the
		// extra and resource labels are merged in, rather than every sample's labels sorted.
		c.mergeSorted(extra, own)
	} else {
		c.pairs = append(c.pairs, extra...)
		for _, l := range c.res {
			if !own || !c.has(l.Name) {
				c.pairs = append(c.pairs, l)
			}
		}
		slices.SortStableFunc(c.pairs, compareNames)
		c.final = c.final[:0]
		for _, l := range c.pairs {
			c.push(l, false)
		}
		c.dropEmpty()
	}
	c.renameExternal()
	st.Samples++
	if pa, ok := app.(PairsAppender); ok {
		return pa.AppendPairs(c.final, t, v)
	}
	c.builder.Reset()
	for _, l := range c.final {
		c.builder.Add(l.Name, l.Value)
	}
	c.builder.Overwrite(&c.ls)
	return app.Append(c.ls, t, v)
}

func compareNames(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) }

// mergeSorted writes to c.final the sorted pairs, extra and resource labels merged by name (of
// equal names, pairs come first, then extra, then the resource's), as one stable sort would
// order them.
func (c *Converter) mergeSorted(extra []labels.Label, own bool) {
	c.final = c.final[:0]
	a, b, r := c.pairs, extra, c.res
	for len(a)+len(b)+len(r) > 0 {
		switch {
		case len(a) > 0 && (len(b) == 0 || a[0].Name <= b[0].Name) && (len(r) == 0 || a[0].Name <= r[0].Name):
			c.push(a[0], false)
			a = a[1:]
		case len(b) > 0 && (len(r) == 0 || b[0].Name <= r[0].Name):
			c.push(b[0], false)
			b = b[1:]
		default:
			c.push(r[0], own)
			r = r[1:]
		}
	}
	c.dropEmpty()
}

// push appends l to c.final in name order. A name already there is either kept as it is (skip:
// a resource label under a data point's own) or joined with ";" as the Collector does with two
// attributes that sanitize to the same name.
func (c *Converter) push(l labels.Label, skip bool) {
	n := len(c.final)
	if n == 0 || c.final[n-1].Name != l.Name {
		c.final = append(c.final, l)
		return
	}
	if !skip && l.Value != "" {
		c.final[n-1].Value = joinNonEmpty(c.final[n-1].Value, l.Value)
	}
}

// renameExternal renames the labels of c.final (sorted) that collide with an external label
// name to exported_<name>; one whose exported_<name> is there already is dropped.
func (c *Converter) renameExternal() {
	clash := false
	for _, name := range c.opts.ExternalLabels {
		if finalHas(c.final, name) {
			clash = true
			break
		}
	}
	if !clash {
		return
	}
	kept := make([]labels.Label, 0, len(c.final))
	for _, l := range c.final {
		if slices.Contains(c.opts.ExternalLabels, l.Name) {
			l.Name = "exported_" + l.Name
			if finalHas(c.final, l.Name) {
				continue
			}
		}
		kept = append(kept, l)
	}
	slices.SortStableFunc(kept, compareNames)
	c.final = append(c.final[:0], kept...)
}

// finalHas tells whether the sorted labels ls have one named name.
func finalHas(ls []labels.Label, name string) bool {
	_, ok := slices.BinarySearchFunc(ls, name, func(l labels.Label, n string) int { return strings.Compare(l.Name, n) })
	return ok
}

// dropEmpty removes empty values: in Prometheus an empty label is an absent one.
func (c *Converter) dropEmpty() {
	c.final = slices.DeleteFunc(c.final, func(l labels.Label) bool { return l.Value == "" })
}

func (c *Converter) has(name string) bool {
	for _, l := range c.pairs {
		if l.Name == name {
			return true
		}
	}
	return false
}

func joinNonEmpty(a, b string) string {
	if a == "" {
		return b
	}
	return a + ";" + b
}

func (c *Converter) metricNames(raw string) *metricNames {
	if n, ok := c.names[raw]; ok {
		return n
	}
	plain := SanitizeMetricName(raw)
	n := &metricNames{plain: plain, total: plain, bucket: plain + "_bucket", sum: plain + "_sum", count: plain + "_count"}
	if !strings.HasSuffix(plain, "_total") && !c.opts.WithoutSuffixes {
		n.total = plain + "_total"
	}
	c.names[raw] = n
	return n
}

func (c *Converter) labelName(raw string) string {
	if validLabelName(raw) {
		return raw
	}
	if n, ok := c.lnames[raw]; ok {
		return n
	}
	n := SanitizeLabelName(raw)
	c.lnames[raw] = n
	return n
}

func (c *Converter) float(f float64) string {
	if s, ok := c.floats[f]; ok {
		return s
	}
	s := FormatFloat(f)
	c.floats[f] = s
	return s
}

// FormatFloat formats le and quantile values as the Collector's Prometheus translator does
// ('f' format: "1", "0.005", "1000000"). Prometheus 3's own scrape would store "1.0"; PromQL
// functions such as histogram_quantile do not care.
func FormatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func ts(t pcommon.Timestamp) int64 { return int64(t) / 1e6 }

func val(v float64, fl pmetric.DataPointFlags) float64 {
	if fl.NoRecordedValue() {
		return math.Float64frombits(value.StaleNaN)
	}
	return v
}

// SanitizeMetricName replaces characters outside [a-zA-Z0-9_:] with "_" and prefixes a leading
// digit with "_".
func SanitizeMetricName(s string) string { return sanitize(s, true, "_") }

// SanitizeLabelName replaces characters outside [a-zA-Z0-9_] with "_" and prefixes a leading
// digit with "key_", as the Collector does.
func SanitizeLabelName(s string) string { return sanitize(s, false, "key_") }

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i], false, i == 0) {
			return false
		}
	}
	return true
}

func sanitize(s string, colon bool, digitPrefix string) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	if s[0] >= '0' && s[0] <= '9' {
		b.WriteString(digitPrefix)
	}
	for _, r := range s {
		if r < 0x80 && nameChar(byte(r), colon, false) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func nameChar(ch byte, colon, first bool) bool {
	switch {
	case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch == '_':
		return true
	case ch >= '0' && ch <= '9':
		return !first
	case ch == ':':
		return colon
	}
	return false
}
