package scrapeconv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// ErrSampleLimit fails a scrape whose target exposes more samples than allowed.
var ErrSampleLimit = errors.New("sample limit exceeded")

// ErrSeriesLimit fails a scrape whose target exposes more series (or metric families) than its
// budget, before relabelling: the bound on what one scrape can add to the converter's state.
var ErrSeriesLimit = errors.New("series limit exceeded")

// ErrParse wraps every exposition syntax error.
var ErrParse = errors.New("invalid exposition")

// MetadataTypeKey is the pmetric metadata key holding the Prometheus type, as the Collector's
// prometheus receiver sets it.
const MetadataTypeKey = "prometheus.type"

// Options configure a Converter.
type Options struct {
	HonorTimestamps bool
	// HonorLabels keeps scraped labels that collide with target labels; otherwise they are
	// renamed exported_<name>, as Prometheus does.
	HonorLabels bool
	// SampleLimit fails a scrape with more samples than this after relabelling (0: none).
	SampleLimit int
	// SeriesLimit fails a scrape with more series, or more HELP/TYPE/UNIT names, than this
	// before relabelling (0: none). Unlike SampleLimit it also bounds series and metadata that
	// relabelling drops, which still cost memory while the scrape is parsed.
	SeriesLimit int
	Relabel     []*relabel.Config
	// TargetLabels are added to every series (job, instance, node, metrics_path, ...). job and
	// instance become resource attributes rather than data point attributes.
	TargetLabels labels.Labels
}

// Stats describe one scrape.
type Stats struct {
	// Scraped counts samples in the body, PostRelabel those kept by metric_relabel_configs.
	Scraped, PostRelabel int
	// Duplicates are repeated series in one body; Unsupported are native histograms.
	Duplicates, Unsupported int
	// Stale counts staleness markers emitted for series that disappeared.
	Stale int
}

type sampleKind uint8

const (
	kindValue sampleKind = iota
	kindBucket
	kindQuantile
	kindSum
	kindCount
	kindCreated
)

// series is what the cache remembers of one raw series text. The cache is keyed by a seeded
// 64-bit hash of that text rather than the text itself, which would be most of the receiver's
// memory (cadvisor series lines run to 300 bytes). Two lines of one target colliding takes
// about 2^32 distinct series; the seed is random per Converter, so no exposition can aim at one.
type series struct {
	g     *group
	kind  sampleKind
	bound float64
	gen   uint64
	drop  bool
}

type bucket struct{ bound, value float64 }

// group is one output data point: a family and a set of attributes (a histogram's buckets and a
// summary's quantiles share one group). Groups are found by hash and compared in full, so a
// collision costs a longer chain, never a wrong series.
type group struct {
	fam   *family
	attrs labels.Labels
	next  *group // another group with the same hash
	gen   uint64

	ts                         int64
	value, sum, count          float64
	hasValue, hasSum, hasCount bool
	buckets                    []bucket
	created                    int64
	start, prevTS              int64
	prev                       float64
	seen                       bool
}

// family is one output metric.
type family struct {
	name      string
	typ       model.MetricType
	mtype     pmetric.MetricType
	monotonic bool
	help      string
	unit      string
	gen       uint64
	groups    []*group
	metric    pmetric.Metric
	metricGen uint64
}

type freshGroup struct {
	key uint64
	g   *group
}

type meta struct {
	typ        model.MetricType
	help, unit string
	gen        uint64 // the last full parse that declared it
}

// Converter converts the scrapes of one target. It is not safe for concurrent use.
type Converter struct {
	opts     Options
	symbols  *labels.SymbolTable
	seed     maphash.Seed
	meta     map[string]*meta
	series   map[uint64]*series
	groups   map[uint64]*group
	families map[string]*family
	// interned holds one copy of each attribute set: in cadvisor dozens of families share a
	// container's labels.
	interned map[uint64]labels.Labels

	gen         uint64
	typeChanged bool
	// What this scrape added to the cache, taken out again if it fails: otherwise a target
	// failing every scrape with new series (a cardinality bomb past the limits) would grow the
	// cache each time, since only a successful scrape evicts.
	freshSeries   []uint64
	freshGroups   []freshGroup
	freshFamilies []string
	freshMeta     []string
	metaSeen      int
	order         []*family
	active        []*group
	next          []*group

	lset labels.Labels
	lb   *labels.Builder

	// comments holds the hashes of the comment lines of the last text body the full parser
	// read: the fast path knows their effect.
	comments map[uint64]struct{}
	slowOnly bool // tests: compare the fast path with the full parser
}

// New returns a Converter for one target.
func New(opts Options) *Converter {
	return &Converter{
		opts:     opts,
		symbols:  labels.NewSymbolTable(),
		seed:     maphash.MakeSeed(),
		meta:     map[string]*meta{},
		series:   map[uint64]*series{},
		groups:   map[uint64]*group{},
		interned: map[uint64]labels.Labels{},
		comments: map[uint64]struct{}{},
		families: map[string]*family{},
		lb:       labels.NewBuilder(labels.EmptyLabels()),
	}
}

// Convert parses body and, if the whole body is valid, appends its metrics to dest plus
// staleness markers for series of the previous successful scrape that are gone. On error
// nothing is appended and the staleness state is untouched. scrapeMs is the scrape time, used
// for samples without a timestamp and for staleness markers.
func (c *Converter) Convert(body []byte, mediaType string, scrapeMs int64, dest pmetric.MetricSlice) (Stats, error) {
	if c.typeChanged {
		c.reset()
	}
	c.gen++
	c.order = c.order[:0]
	c.startFresh()
	var st Stats
	if err := c.parse(body, mediaType, scrapeMs, &st); err != nil {
		c.forgetFresh()
		return st, err
	}
	c.emit(scrapeMs, dest, &st)
	c.release()
	c.evict()
	if c.typeChanged {
		c.reset()
	}
	return st, nil
}

// parse reads the body into the groups: by the fast path when it can, else (or when the fast path
// gives up part way, having started a new generation) with Prometheus' parser.
func (c *Converter) parse(body []byte, mediaType string, scrapeMs int64, st *Stats) error {
	if mediaType == MediaText && !c.slowOnly {
		if c.parseFast(body, scrapeMs, st) {
			return nil
		}
		c.restart(st)
	}
	if err := c.parseFull(body, mediaType, scrapeMs, st); err != nil {
		return err
	}
	c.evictMeta()
	if mediaType == MediaText {
		c.learnComments(body)
	}
	return nil
}

func (c *Converter) startFresh() {
	c.freshSeries = c.freshSeries[:0]
	c.freshGroups = c.freshGroups[:0]
	c.freshFamilies = c.freshFamilies[:0]
	c.freshMeta = c.freshMeta[:0]
	c.metaSeen = 0
}

// forgetFresh takes out of the cache what a failed scrape added to it.
func (c *Converter) forgetFresh() {
	for _, k := range c.freshSeries {
		delete(c.series, k)
	}
	for _, fg := range c.freshGroups {
		c.unlinkGroup(fg.key, fg.g)
	}
	for _, k := range c.freshFamilies {
		delete(c.families, k)
	}
	for _, name := range c.freshMeta {
		delete(c.meta, name)
	}
	c.startFresh()
}

func (c *Converter) unlinkGroup(key uint64, g *group) {
	first := c.groups[key]
	if first == g {
		if g.next == nil {
			delete(c.groups, key)
		} else {
			c.groups[key] = g.next
		}
		return
	}
	for p := first; p != nil; p = p.next {
		if p.next == g {
			p.next = g.next
			return
		}
	}
}

// evictMeta forgets the HELP/TYPE/UNIT of names a fully parsed body no longer declares, so
// names that change every scrape do not pile up. (A body taken by the fast path has only
// comment lines the last full parse had, and changes nothing here.)
func (c *Converter) evictMeta() {
	for name, m := range c.meta {
		if m.gen != c.gen {
			delete(c.meta, name)
		}
	}
}

func (c *Converter) parseFull(body []byte, mediaType string, scrapeMs int64, st *Stats) error {
	p, err := textparse.New(body, mediaType, c.symbols, textparse.ParserOptions{OpenMetricsSkipSTSeries: true})
	if p == nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	om := mediaType == MediaOpenMetrics
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrParse, err)
		}
		switch entry {
		case textparse.EntryType:
			name, typ := p.Type()
			if err := c.setType(name, typ); err != nil {
				return err
			}
		case textparse.EntryHelp:
			name, help := p.Help()
			m, err := c.metaFor(name)
			if err != nil {
				return err
			}
			if m.help != string(help) {
				m.help = string(help)
			}
		case textparse.EntryUnit:
			name, unit := p.Unit()
			m, err := c.metaFor(name)
			if err != nil {
				return err
			}
			if m.unit != string(unit) {
				m.unit = string(unit)
			}
		case textparse.EntryHistogram:
			st.Scraped++
			st.Unsupported++
			if err := c.checkSeries(st); err != nil {
				return err
			}
		case textparse.EntrySeries:
			if err := c.sample(p, om, scrapeMs, st); err != nil {
				return err
			}
		}
	}
}

// metaFor returns the metadata entry of name, marked as declared in this parse; more names in
// one body than SeriesLimit fail it.
func (c *Converter) metaFor(name []byte) (*meta, error) {
	m := c.meta[string(name)]
	if m == nil {
		m = &meta{}
		c.meta[string(name)] = m
		c.freshMeta = append(c.freshMeta, string(name))
	}
	if m.gen != c.gen {
		m.gen = c.gen
		c.metaSeen++
		if c.opts.SeriesLimit > 0 && c.metaSeen > c.opts.SeriesLimit {
			return nil, fmt.Errorf("%w: more than %d metric names", ErrSeriesLimit, c.opts.SeriesLimit)
		}
	}
	return m, nil
}

// checkSeries fails the scrape once it has more series than SeriesLimit, before the next one
// is added to the cache.
func (c *Converter) checkSeries(st *Stats) error {
	if c.opts.SeriesLimit > 0 && st.Scraped > c.opts.SeriesLimit {
		return fmt.Errorf("%w: more than %d series", ErrSeriesLimit, c.opts.SeriesLimit)
	}
	return nil
}

// SetSeriesLimit changes SeriesLimit for the next scrapes: a node's budget is shared by its
// endpoints.
func (c *Converter) SetSeriesLimit(n int) { c.opts.SeriesLimit = n }

// setType records a family's type (HELP may have created its entry untyped). A type that
// changes between scrapes invalidates the cache once the scrape is done, because every cached
// series' family and role were derived from the types.
func (c *Converter) setType(name []byte, typ model.MetricType) error {
	m, err := c.metaFor(name)
	if err != nil {
		return err
	}
	if m.typ != "" && m.typ != typ {
		c.typeChanged = true
	}
	m.typ = typ
	return nil
}

// reset forgets every cached series after a type change. Series of the last scrape get no
// staleness marker: those still exposed continue under their new type.
func (c *Converter) reset() {
	c.typeChanged = false
	clear(c.series)
	clear(c.groups)
	clear(c.families)
	clear(c.interned)
	clear(c.comments)
	c.active = c.active[:0]
}

func (c *Converter) sample(p textparse.Parser, om bool, scrapeMs int64, st *Stats) error {
	raw, tsp, v := p.Series()
	st.Scraped++
	if err := c.checkSeries(st); err != nil {
		return err
	}
	key := maphash.Bytes(c.seed, raw)
	s := c.series[key]
	if s == nil {
		var err error
		if s, err = c.newSeries(p, raw, key); err != nil {
			return err
		}
	}
	g, err := c.observe(s, tsp, v, scrapeMs, st)
	if g == nil {
		return err
	}
	if om && g.fam.cumulative() && g.created == 0 {
		if ct := p.StartTimestamp(); ct != 0 {
			g.created = ct
		}
	}
	return nil
}

// observe records one sample of a known series in its group, and returns the group (nil for a
// duplicate or dropped series, or on error).
func (c *Converter) observe(s *series, tsp *int64, v float64, scrapeMs int64, st *Stats) (*group, error) {
	if s.gen == c.gen {
		st.Duplicates++
		return nil, nil
	}
	s.gen = c.gen
	if s.drop {
		return nil, nil
	}
	st.PostRelabel++
	if c.opts.SampleLimit > 0 && st.PostRelabel > c.opts.SampleLimit {
		return nil, fmt.Errorf("%w: more than %d samples", ErrSampleLimit, c.opts.SampleLimit)
	}
	ts := scrapeMs
	if c.opts.HonorTimestamps && tsp != nil {
		ts = *tsp
	}
	g := s.g
	if g.gen != c.gen {
		c.touch(g)
	}
	g.ts = ts
	switch s.kind {
	case kindValue:
		g.value, g.hasValue = v, true
	case kindBucket:
		g.buckets = append(g.buckets, bucket{s.bound, v})
	case kindQuantile:
		g.buckets = append(g.buckets, bucket{s.bound, v})
	case kindSum:
		g.sum, g.hasSum = v, true
	case kindCount:
		g.count, g.hasCount = v, true
	case kindCreated:
		g.created = int64(v * 1000)
	}
	return g, nil
}

// touch resets a group for this scrape and lists it, and its family, for output.
func (c *Converter) touch(g *group) {
	g.gen = c.gen
	g.hasValue, g.hasSum, g.hasCount = false, false, false
	g.buckets = g.buckets[:0]
	g.created = 0
	f := g.fam
	if f.gen != c.gen {
		f.gen = c.gen
		f.groups = f.groups[:0]
		c.order = append(c.order, f)
	}
	f.groups = append(f.groups, g)
}

// newSeries works out, once per series, its final labels, family, role and group.
func (c *Converter) newSeries(p textparse.Parser, raw []byte, key uint64) (*series, error) {
	s := &series{}
	c.series[key] = s
	c.freshSeries = append(c.freshSeries, key)
	p.Labels(&c.lset)
	c.lb.Reset(c.lset)
	c.opts.TargetLabels.Range(func(l labels.Label) {
		scraped := c.lset.Get(l.Name)
		switch {
		case scraped == "":
			c.lb.Set(l.Name, l.Value)
		case !c.opts.HonorLabels:
			c.lb.Set("exported_"+l.Name, scraped)
			c.lb.Set(l.Name, l.Value)
		}
	})
	if len(c.opts.Relabel) > 0 && !relabel.ProcessBuilder(c.lb, c.opts.Relabel...) {
		s.drop = true
		return s, nil
	}
	final := c.lb.Labels()
	name := final.Get(model.MetricNameLabel)
	if name == "" {
		s.drop = true
		return s, nil
	}
	f, kind := c.resolve(name)
	s.kind = kind
	switch kind {
	case kindBucket, kindQuantile:
		bl := model.BucketLabel
		if kind == kindQuantile {
			bl = model.QuantileLabel
		}
		b, err := strconv.ParseFloat(final.Get(bl), 64)
		if err != nil {
			delete(c.series, key)
			return nil, fmt.Errorf("%w: series %s: label %s: %w", ErrParse, raw, bl, err)
		}
		s.bound = b
	}
	s.g = c.groupFor(f, c.intern(c.attrs(f)))
	return s, nil
}

func (c *Converter) intern(attrs labels.Labels) labels.Labels {
	h := attrs.Hash()
	if have, ok := c.interned[h]; ok {
		if labels.Equal(have, attrs) {
			return have
		}
		return attrs // a hash collision: keep a private copy
	}
	c.interned[h] = attrs
	return attrs
}

// attrs are the data point attributes of the builder's series: its labels less the name, the
// resource labels and, for histograms and summaries, the bucket label. (Empty values are absent
// labels in Prometheus; the builder drops them.)
func (c *Converter) attrs(f *family) labels.Labels {
	c.lb.Del(model.MetricNameLabel, model.JobLabel, model.InstanceLabel)
	switch f.mtype {
	case pmetric.MetricTypeHistogram:
		c.lb.Del(model.BucketLabel)
	case pmetric.MetricTypeSummary:
		c.lb.Del(model.QuantileLabel)
	}
	return c.lb.Labels()
}

func (c *Converter) groupFor(f *family, attrs labels.Labels) *group {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(f.name)
	h.WriteByte(0xff)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], attrs.Hash())
	_, _ = h.Write(b[:])
	key := h.Sum64()
	first := c.groups[key]
	for g := first; g != nil; g = g.next {
		if g.fam == f && labels.Equal(g.attrs, attrs) {
			return g
		}
	}
	g := &group{fam: f, attrs: attrs, next: first}
	c.groups[key] = g
	c.freshGroups = append(c.freshGroups, freshGroup{key, g})
	return g
}

var suffixes = []struct {
	suffix string
	kind   sampleKind
	types  []model.MetricType
}{
	{"_bucket", kindBucket, []model.MetricType{model.MetricTypeHistogram}},
	{"_count", kindCount, []model.MetricType{model.MetricTypeHistogram, model.MetricTypeSummary}},
	{"_sum", kindSum, []model.MetricType{model.MetricTypeHistogram, model.MetricTypeSummary}},
	{"_created", kindCreated, []model.MetricType{model.MetricTypeHistogram, model.MetricTypeSummary, model.MetricTypeCounter}},
	{"_total", kindValue, []model.MetricType{model.MetricTypeCounter}},
	{"_info", kindValue, []model.MetricType{model.MetricTypeInfo}},
}

// resolve finds the family a sample name belongs to and the sample's role in it. A counter
// keeps its sample name (foo_total), histograms and summaries take their family name, so that
// Prometheus remote write turns them back into the scraped names. Gauge histograms have no
// OTLP form and stay individual gauges, le label included.
func (c *Converter) resolve(name string) (*family, sampleKind) {
	if m := c.meta[name]; m != nil {
		switch m.typ {
		case model.MetricTypeSummary:
			return c.familyFor(name, m), kindQuantile
		case model.MetricTypeHistogram:
		default:
			return c.familyFor(name, m), kindValue
		}
	}
	for _, sfx := range suffixes {
		base, ok := strings.CutSuffix(name, sfx.suffix)
		if !ok {
			continue
		}
		m := c.meta[base]
		if m == nil || !hasType(sfx.types, m.typ) {
			continue
		}
		if m.typ == model.MetricTypeCounter || m.typ == model.MetricTypeInfo {
			if sfx.kind == kindCreated {
				return c.familyFor(base+"_total", m), kindCreated
			}
			return c.familyFor(name, m), kindValue
		}
		return c.familyFor(base, m), sfx.kind
	}
	return c.familyFor(name, &meta{typ: model.MetricTypeUnknown}), kindValue
}

func hasType(types []model.MetricType, t model.MetricType) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

func (c *Converter) familyFor(name string, m *meta) *family {
	key := name + "\x00" + string(m.typ)
	if f := c.families[key]; f != nil {
		f.help, f.unit = m.help, m.unit
		return f
	}
	typ := m.typ
	if typ == "" {
		typ = model.MetricTypeUnknown
	}
	f := &family{name: name, typ: typ, help: m.help, unit: m.unit}
	c.freshFamilies = append(c.freshFamilies, key)
	switch typ {
	case model.MetricTypeCounter:
		f.mtype, f.monotonic = pmetric.MetricTypeSum, true
	case model.MetricTypeInfo, model.MetricTypeStateset:
		f.mtype = pmetric.MetricTypeSum
	case model.MetricTypeHistogram:
		f.mtype, f.monotonic = pmetric.MetricTypeHistogram, true
	case model.MetricTypeSummary:
		f.mtype, f.monotonic = pmetric.MetricTypeSummary, true
	default:
		// Unknown, gauge, and gauge histograms (no OTLP equivalent) are gauges, as the
		// Collector's prometheus receiver does.
		f.mtype = pmetric.MetricTypeGauge
	}
	c.families[key] = f
	return f
}

func (f *family) cumulative() bool { return f.monotonic }

// emit writes this scrape's families, then staleness markers for what vanished.
func (c *Converter) emit(scrapeMs int64, dest pmetric.MetricSlice, st *Stats) {
	dest.EnsureCapacity(dest.Len() + len(c.order))
	c.next = c.next[:0]
	for _, f := range c.order {
		for _, g := range f.groups {
			if g.empty() {
				continue
			}
			if f.metricGen != c.gen {
				reserve(c.metricFor(f, dest), len(f.groups))
			}
			g.write(c.metricFor(f, dest), false, scrapeMs)
			c.next = append(c.next, g)
		}
	}
	for _, g := range c.active {
		if g.gen == c.gen && !g.empty() {
			continue
		}
		g.write(c.metricFor(g.fam, dest), true, scrapeMs)
		st.Stale++
	}
	c.active, c.next = c.next, c.active
}

// metricFor is f's metric in this scrape's output, created on first use.
func (c *Converter) metricFor(f *family, dest pmetric.MetricSlice) pmetric.Metric {
	if f.metricGen != c.gen {
		f.metricGen = c.gen
		f.metric = newMetric(dest, f)
	}
	return f.metric
}

// Stale appends staleness markers for every series of the last successful scrape, for a target
// that went away, and forgets them.
func (c *Converter) Stale(scrapeMs int64, dest pmetric.MetricSlice) int {
	c.gen++
	n := 0
	for _, g := range c.active {
		g.write(c.metricFor(g.fam, dest), true, scrapeMs)
		n++
	}
	c.active = c.active[:0]
	c.release()
	return n
}

// release drops the families' handles on this scrape's output, which belongs to the consumer
// now: holding them would keep a whole scrape's data points alive until the next one.
func (c *Converter) release() {
	for _, f := range c.families {
		f.metric = pmetric.Metric{}
	}
}

// evict forgets series, groups and families not in this scrape: a series that comes back is
// new again.
func (c *Converter) evict() {
	for k, f := range c.families {
		if f.gen != c.gen {
			delete(c.families, k)
		}
	}
	for k, s := range c.series {
		if s.gen != c.gen {
			delete(c.series, k)
		}
	}
	if c.evictGroups() {
		// Rebuilt only when groups went away, which steady scrapes don't do.
		clear(c.interned)
		for _, first := range c.groups {
			for g := first; g != nil; g = g.next {
				c.interned[g.attrs.Hash()] = g.attrs
			}
		}
	}
}

func (c *Converter) evictGroups() (evicted bool) {
	for k, first := range c.groups {
		var kept *group
		for g := first; g != nil; {
			next := g.next
			if g.gen == c.gen {
				g.next, kept = kept, g
			} else {
				evicted = true
			}
			g = next
		}
		if kept == nil {
			delete(c.groups, k)
		} else if kept != first {
			c.groups[k] = kept
		}
	}
	return evicted
}

func newMetric(dest pmetric.MetricSlice, f *family) pmetric.Metric {
	m := dest.AppendEmpty()
	m.SetName(f.name)
	m.SetDescription(f.help)
	m.SetUnit(f.unit)
	m.Metadata().PutStr(MetadataTypeKey, string(f.typ))
	switch f.mtype {
	case pmetric.MetricTypeSum:
		s := m.SetEmptySum()
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		s.SetIsMonotonic(f.monotonic)
	case pmetric.MetricTypeHistogram:
		m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case pmetric.MetricTypeSummary:
		m.SetEmptySummary()
	default:
		m.SetEmptyGauge()
	}
	return m
}

// reserve sizes a new metric's point slice for n points.
func reserve(m pmetric.Metric, n int) {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		m.Gauge().DataPoints().EnsureCapacity(n)
	case pmetric.MetricTypeSum:
		m.Sum().DataPoints().EnsureCapacity(n)
	case pmetric.MetricTypeHistogram:
		m.Histogram().DataPoints().EnsureCapacity(n)
	case pmetric.MetricTypeSummary:
		m.Summary().DataPoints().EnsureCapacity(n)
	}
}

var noRecordedValue = pmetric.DefaultDataPointFlags.WithNoRecordedValue(true)

// empty: the group had samples (say, only _created) but nothing to report.
func (g *group) empty() bool {
	switch g.fam.mtype {
	case pmetric.MetricTypeHistogram:
		return !g.hasCount && len(g.buckets) == 0
	case pmetric.MetricTypeSummary:
		return !g.hasCount && !g.hasSum && len(g.buckets) == 0
	default:
		return !g.hasValue
	}
}

// putAttrs writes the group's attributes. The strings are shared with the cached labels, not
// copied.
func (g *group) putAttrs(dst pcommon.Map) {
	dst.EnsureCapacity(g.attrs.Len())
	g.attrs.Range(func(l labels.Label) { dst.PutStr(l.Name, l.Value) })
}

// startTime is the created timestamp when the exposition has one, else when this receiver first
// saw the series, moved forward when the value goes down (a counter reset).
func (g *group) startTime(cur float64) int64 {
	switch {
	case g.created != 0:
		g.start = g.created
	case !g.seen:
		g.start = g.ts
	case cur < g.prev:
		g.start = g.prevTS
	}
	g.seen, g.prev, g.prevTS = true, cur, g.ts
	return g.start
}

func (g *group) write(m pmetric.Metric, stale bool, scrapeMs int64) {
	ts := g.ts
	if stale {
		ts = scrapeMs
	}
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		g.writeNumber(m.Gauge().DataPoints().AppendEmpty(), stale, ts, false)
	case pmetric.MetricTypeSum:
		g.writeNumber(m.Sum().DataPoints().AppendEmpty(), stale, ts, m.Sum().IsMonotonic())
	case pmetric.MetricTypeHistogram:
		g.writeHistogram(m.Histogram().DataPoints().AppendEmpty(), stale, ts)
	case pmetric.MetricTypeSummary:
		g.writeSummary(m.Summary().DataPoints().AppendEmpty(), stale, ts)
	}
}

func (g *group) writeNumber(dp pmetric.NumberDataPoint, stale bool, ts int64, cumulative bool) {
	g.putAttrs(dp.Attributes())
	dp.SetTimestamp(msToTime(ts))
	if stale || value.IsStaleNaN(g.value) {
		dp.SetFlags(noRecordedValue)
		return
	}
	dp.SetDoubleValue(g.value)
	if cumulative {
		dp.SetStartTimestamp(msToTime(g.startTime(g.value)))
	}
}

func (g *group) writeHistogram(dp pmetric.HistogramDataPoint, stale bool, ts int64) {
	g.putAttrs(dp.Attributes())
	dp.SetTimestamp(msToTime(ts))
	if stale || value.IsStaleNaN(g.count) || value.IsStaleNaN(g.sum) {
		dp.SetFlags(noRecordedValue)
		return
	}
	sortBuckets(g.buckets)
	count := g.count
	if !g.hasCount && len(g.buckets) > 0 {
		count = g.buckets[len(g.buckets)-1].value
	}
	dp.SetCount(uint64(count))
	if g.hasSum {
		dp.SetSum(g.sum)
	}
	n := len(g.buckets)
	if n > 0 && math.IsInf(g.buckets[n-1].bound, 1) {
		n--
	}
	bounds := dp.ExplicitBounds()
	counts := dp.BucketCounts()
	bounds.EnsureCapacity(n)
	counts.EnsureCapacity(n + 1)
	prev := 0.0
	for _, b := range g.buckets[:n] {
		bounds.Append(b.bound)
		counts.Append(uint64(max(b.value-prev, 0)))
		prev = b.value
	}
	if len(g.buckets) > 0 {
		counts.Append(uint64(max(count-prev, 0)))
	}
	dp.SetStartTimestamp(msToTime(g.startTime(count)))
}

func (g *group) writeSummary(dp pmetric.SummaryDataPoint, stale bool, ts int64) {
	g.putAttrs(dp.Attributes())
	dp.SetTimestamp(msToTime(ts))
	if stale || value.IsStaleNaN(g.count) || value.IsStaleNaN(g.sum) {
		dp.SetFlags(noRecordedValue)
		return
	}
	dp.SetCount(uint64(g.count))
	dp.SetSum(g.sum)
	sortBuckets(g.buckets)
	qs := dp.QuantileValues()
	qs.EnsureCapacity(len(g.buckets))
	for _, b := range g.buckets {
		q := qs.AppendEmpty()
		q.SetQuantile(b.bound)
		q.SetValue(b.value)
	}
	dp.SetStartTimestamp(msToTime(g.startTime(g.count)))
}

func sortBuckets(b []bucket) {
	// Expositions list buckets in order; sort (insertion) only when they are not.
	for i := 1; i < len(b); i++ {
		for j := i; j > 0 && b[j].bound < b[j-1].bound; j-- {
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
}

func msToTime(ms int64) pcommon.Timestamp { return pcommon.Timestamp(ms * 1e6) }
