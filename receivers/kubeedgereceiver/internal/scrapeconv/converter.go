package scrapeconv

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/flatindex"
)

// ErrSampleLimit fails a scrape whose target exposes more samples than allowed.
var ErrSampleLimit = errors.New("sample limit exceeded")

// ErrSeriesLimit fails a scrape whose target exposes more series (or metric families) than its
// budget, before relabelling: the bound on what one scrape can add to the converter's state.
var ErrSeriesLimit = errors.New("series limit exceeded")

// ErrLabelLimit fails a scrape with a series beyond label_limit, label_name_length_limit or
// label_value_length_limit, as Prometheus fails it.
var ErrLabelLimit = errors.New("label limit exceeded")

// ErrParse wraps every exposition syntax error.
var ErrParse = errors.New("invalid exposition")

// MetadataTypeKey is the pmetric metadata key holding the Prometheus type, as the Collector's
// prometheus receiver sets it.
const MetadataTypeKey = "prometheus.type"

// Options configure a Converter.
type Options struct {
	HonorTimestamps bool
	// LabelLimits bound the labels of every series after relabelling, target labels included
	// (0: none).
	LabelLimits LabelLimits
	// MaxFutureSkew refuses samples whose own timestamp is more than this after the scrape
	// time (a node with a fast clock), counted in Stats.ClockSkew; 0: no bound.
	MaxFutureSkew time.Duration
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
	// TargetLabels are the labels every series of the target gets (job, instance, node,
	// metrics_path, ...). They travel once, as the attributes of the output's resource
	// (ResourceAttributes; job and instance as service.name and service.instance.id), not on the
	// data points. A series whose relabelling or honor_labels gave one of them another value
	// carries its own value on its data points, which wins over the resource's; one whose
	// relabelling removed one carries it empty, which removes it.
	TargetLabels labels.Labels
}

// LabelLimits are Prometheus' scrape limits on a series' labels.
type LabelLimits struct {
	// Labels bounds the number of labels, __name__ included.
	Labels int
	// NameLength and ValueLength bound the bytes of a label name and of a value.
	NameLength, ValueLength int
}

// check fails ls beyond the limits, with Prometheus' messages.
func (l LabelLimits) check(ls labels.Labels) error {
	met := ls.Get(model.MetricNameLabel)
	if l.Labels > 0 && ls.Len() > l.Labels {
		return fmt.Errorf("%w: label_limit exceeded (metric: %.50s, number of labels: %d, limit: %d)", ErrLabelLimit, met, ls.Len(), l.Labels)
	}
	if l.NameLength == 0 && l.ValueLength == 0 {
		return nil
	}
	return ls.Validate(func(lb labels.Label) error {
		if l.NameLength > 0 && len(lb.Name) > l.NameLength {
			return fmt.Errorf("%w: label_name_length_limit exceeded (metric: %.50s, label name: %.50s, length: %d, limit: %d)",
				ErrLabelLimit, met, lb.Name, len(lb.Name), l.NameLength)
		}
		if l.ValueLength > 0 && len(lb.Value) > l.ValueLength {
			return fmt.Errorf("%w: label_value_length_limit exceeded (metric: %.50s, label name: %.50s, value: %.50q, length: %d, limit: %d)",
				ErrLabelLimit, met, lb.Name, lb.Value, len(lb.Value), l.ValueLength)
		}
		return nil
	})
}

// Stats describe one scrape.
type Stats struct {
	// Scraped counts samples in the body, PostRelabel those kept by metric_relabel_configs.
	Scraped, PostRelabel int
	// Duplicates are repeated series in one body; Unsupported are native histograms.
	Duplicates, Unsupported int
	// Stale counts staleness markers emitted for series that disappeared.
	Stale int
	// ClockSkew counts samples refused for a timestamp beyond MaxFutureSkew (also counted out
	// of PostRelabel).
	ClockSkew int
	// NewestTimestamp is the newest timestamp a sample of the body carried itself (0: none),
	// refused ones included: the node's clock as its samples show it.
	NewestTimestamp int64
}

type sampleKind uint8

const (
	kindValue sampleKind = iota
	kindBucket
	kindQuantile
	kindSum
	kindCount
	kindCreated
	kindDrop // relabelled away, or without a name
)

// The cache is laid out flat for memory: a target holds thousands of series and a collector a
// thousand targets, so every byte per series counts millions of times, and a pointer per series
// makes the garbage collector visit it. Series and groups live in slices (no per-series
// allocation); the series map holds no pointers; the indexes used only when a series is new
// (group by labels, interned label sets) are built on demand and dropped after the scrape.

// series is what the cache remembers of one raw series text. The cache is keyed by a seeded
// 64-bit hash of that text rather than the text itself, which would be most of the receiver's
// memory (cadvisor series lines run to 300 bytes). Two lines of one target colliding takes
// about 2^32 distinct series; the seed is random per Converter, so no exposition can aim at one.
type series struct {
	key   uint64
	g     uint32 // index of its group in Converter.groups
	gen   uint32
	bound uint32 // le or quantile: index in Converter.bounds
	kind  sampleKind
}

// Key is what the series index finds it by.
func (s series) Key() uint64 { return s.key }

type bucket struct{ bound, value float64 }

// Group flags.
const (
	hasValue uint8 = 1 << iota
	written        // has a data point in the output of the last successful scrape
)

// group is one output data point: a family and a set of attributes (a histogram's buckets and a
// summary's quantiles share one group). What only some groups need lives beside it, by index:
// cumulative state (counters, histograms, summaries), histogram and summary parts.
type group struct {
	fam   uint32 // index in Converter.fams
	attrs uint32 // offset in Converter.syms
	gen   uint32
	ext   uint32 // 1 + index in Converter.exts; 0: none
	cum   uint32 // 1 + index in Converter.cums; 0: not yet written
	flags uint8
}

// point is a group's sample in the scrape being converted.
type point struct {
	ts    int64
	value float64
}

// cumState is what a cumulative group keeps for its start time: the start, and the previous
// value and its time to tell a counter reset.
type cumState struct {
	start, prevTS int64
	prev          float64
}

// ext holds what histograms and summaries need, and created timestamps.
type ext struct {
	sum, count       float64
	created          int64
	buckets          []bucket
	hasSum, hasCount bool
}

// family is one output metric.
type family struct {
	idx       uint32 // in Converter.fams
	name      string
	typ       model.MetricType
	mtype     pmetric.MetricType
	monotonic bool
	help      string
	unit      string
	gen       uint32
	groups    []uint32
	metric    pmetric.Metric
	metricGen uint32
}

type meta struct {
	typ        model.MetricType
	help, unit string
	gen        uint32 // the last full parse that declared it
}

// Converter converts the scrapes of one target. It is not safe for concurrent use.
type Converter struct {
	opts     Options
	symbols  *labels.SymbolTable
	seed     maphash.Seed
	meta     map[string]*meta
	series   flatindex.Index
	seriesAt []series
	// bounds holds the distinct le and quantile values; boundIdx, built when a scrape has new
	// series, finds them.
	bounds   []float64
	boundIdx map[uint64]uint32
	groups   []group
	exts     []ext
	cums     []cumState
	// points is this scrape's samples by group, allocated for the scrape only: between scrapes
	// a group needs no value.
	points   []point
	families map[string]*family
	fams     []*family

	syms symbols
	// Built when a scrape has new series, dropped after it: byLabels finds a group by a hash of
	// its family and attributes; groups are compared in full, so a collision costs a longer
	// chain, never a wrong series.
	byLabels map[uint64][]uint32

	gen         uint32
	typeChanged bool
	// What this scrape added to the cache, taken out again if it fails: otherwise a target
	// failing every scrape with new series (a cardinality bomb past the limits) would grow the
	// cache each time, since only a successful scrape evicts.
	oldLen        struct{ series, groups, exts, syms, arena, bounds, fams int }
	freshFamilies []string
	freshMeta     []string
	metaSeen      int
	order         []*family

	lset labels.Labels
	lb   *labels.Builder
	sb   labels.ScratchBuilder

	// comments holds the hashes of the comment lines of the last text body the full parser
	// read: the fast path knows their effect.
	comments map[uint64]struct{}
	slowOnly bool // tests: compare the fast path with the full parser
}

const noGroup = math.MaxUint32

// New returns a Converter for one target.
func New(opts Options) *Converter {
	return &Converter{
		opts:     opts,
		symbols:  labels.NewSymbolTable(),
		seed:     maphash.MakeSeed(),
		meta:     map[string]*meta{},
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
	c.points = make([]point, len(c.groups), len(c.groups)+len(c.groups)/8)
	defer c.dropIndexes()
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
	// The name may point into a whole label set's string; the copy keeps only the name alive.
	f := &family{idx: uint32(len(c.fams)), name: strings.Clone(name), typ: typ, help: m.help, unit: m.unit}
	c.fams = append(c.fams, f)
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
