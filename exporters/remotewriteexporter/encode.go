package remotewriteexporter

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/edgetel/edgetel/internal/diskqueue"
	"github.com/edgetel/edgetel/internal/sampleconv"
)

// encoder turns the samples of one ConsumeMetrics call into buffer records, one or more per
// shard. It implements sampleconv.PairsAppender. Each sample is written straight into its shard's
// protobuf bytes, so nothing is kept per sample and nothing decodes again before sending.
//
// RW 1.0 records are a sequence of WriteRequest.timeseries fields: a valid WriteRequest by
// themselves, and concatenating records is concatenating requests, which is how the sender
// merges them into one batch. RW 2.0 records are whole Requests with their own symbol table.
type encoder struct {
	v2         bool
	external   []labels.Label // sorted
	maxSamples int
	maxBytes   int
	shards     []shardBuf
	merged     []labels.Label // the current sample's labels, external ones included
	mergeBuf   []labels.Label
	pairs      []labels.Label
	lbuf       []byte // the current sample's label fields, protobuf-encoded
	intern     map[string]string
	out        []pendingRecord
	relabel    []*relabel.Config
	relabeled  int // samples write_relabel_configs dropped since the last finish
	lb         *labels.Builder
	// RW 2.0 sends each series with its metric's metadata and its data point's start time.
	meta  sampleconv.Metadata
	start int64

	spare [][]byte
}

type pendingRecord struct {
	meta    diskqueue.Meta
	payload []byte
}

type shardBuf struct {
	meta  diskqueue.Meta
	buf   []byte // RW 1.0: encoded timeseries fields
	bytes int    // uncompressed size, both versions
	// RW 2.0
	symbols    writev2.SymbolsTable
	series     []writev2.TimeSeries
	refs       []uint32
	samples    []writev2.Sample
	marshalBuf []byte
}

// tagV2 marks RW 2.0 records in the record tag, whose low bits are the shard: a buffer written
// before a protocol_version change is still sent with the right headers.
const tagV2 = 1 << 31

// internLimit bounds the RW 2.0 string cache; past it the cache starts over.
const internLimit = 1 << 20

func newEncoder(shards int, v2 bool, external map[string]string, maxSamples, maxBytes int) *encoder {
	e := &encoder{v2: v2, maxSamples: maxSamples, maxBytes: maxBytes, shards: make([]shardBuf, shards), intern: map[string]string{}}
	for k, v := range external {
		e.external = append(e.external, labels.Label{Name: k, Value: v})
	}
	sort.Slice(e.external, func(i, j int) bool { return e.external[i].Name < e.external[j].Name })
	for i := range e.shards {
		e.shards[i].symbols = writev2.NewSymbolTable()
		e.shards[i].meta.Tag = uint32(i)
		if v2 {
			e.shards[i].meta.Tag |= tagV2
		}
	}
	return e
}

// SetMetadata implements sampleconv.MetadataAppender.
func (e *encoder) SetMetadata(m sampleconv.Metadata) { e.meta = m }

// SetStartTime implements sampleconv.MetadataAppender.
func (e *encoder) SetStartTime(t int64) { e.start = t }

var metricTypesV2 = map[model.MetricType]writev2.Metadata_MetricType{
	model.MetricTypeCounter:   writev2.Metadata_METRIC_TYPE_COUNTER,
	model.MetricTypeGauge:     writev2.Metadata_METRIC_TYPE_GAUGE,
	model.MetricTypeHistogram: writev2.Metadata_METRIC_TYPE_HISTOGRAM,
	model.MetricTypeSummary:   writev2.Metadata_METRIC_TYPE_SUMMARY,
}

// Append implements sampleconv.Appender.
func (e *encoder) Append(ls labels.Labels, t int64, v float64) error {
	e.pairs = e.pairs[:0]
	ls.Range(func(l labels.Label) { e.pairs = append(e.pairs, l) })
	return e.AppendPairs(e.pairs, t, v)
}

// AppendPairs implements sampleconv.PairsAppender: ls is sorted, names unique.
func (e *encoder) AppendPairs(ls []labels.Label, t int64, v float64) error {
	e.mergeLabels(ls)
	if len(e.relabel) > 0 && !e.applyRelabel() {
		e.relabeled++
		return nil
	}
	e.lbuf = appendLabels(e.lbuf[:0], e.merged)
	// The shard is a hash of the encoded labels: free to compute, and the same in every run (a
	// buffer written before a restart keeps each series in one shard, hence in order).
	s := &e.shards[xxhash.Sum64(e.lbuf)%uint64(len(e.shards))]
	if e.v2 {
		e.appendV2(s, t, v)
	} else {
		e.appendV1(s, t, v)
	}
	m := &s.meta
	if m.Count == 0 || t < m.MinTime {
		m.MinTime = t
	}
	if m.Count == 0 || t > m.MaxTime {
		m.MaxTime = t
	}
	m.Count++
	if int(m.Count) >= e.maxSamples || s.bytes >= e.maxBytes {
		e.flush(s)
	}
	return nil
}

// mergeLabels puts the series' labels and the external labels not already set into e.merged,
// sorted by name, as Prometheus adds external labels. Without external labels e.merged is ls.
func (e *encoder) mergeLabels(ls []labels.Label) {
	if len(e.external) == 0 {
		e.merged = ls
		return
	}
	e.merged = e.mergeBuf[:0]
	ext := e.external
	for _, l := range ls {
		for len(ext) > 0 && ext[0].Name < l.Name {
			e.merged = append(e.merged, ext[0])
			ext = ext[1:]
		}
		if len(ext) > 0 && ext[0].Name == l.Name {
			ext = ext[1:]
		}
		e.merged = append(e.merged, l)
	}
	e.merged = append(e.merged, ext...)
	e.mergeBuf = e.merged
}

// applyRelabel runs write_relabel_configs over e.merged, as Prometheus does after adding the
// external labels; false means the series is dropped.
func (e *encoder) applyRelabel() bool {
	if e.lb == nil {
		e.lb = labels.NewBuilder(labels.EmptyLabels())
	}
	e.lb.Reset(labels.EmptyLabels())
	for _, l := range e.merged {
		e.lb.Set(l.Name, l.Value)
	}
	if !relabel.ProcessBuilder(e.lb, e.relabel...) {
		return false
	}
	e.merged = e.mergeBuf[:0]
	e.lb.Range(func(l labels.Label) { e.merged = append(e.merged, l) })
	slices.SortFunc(e.merged, func(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) })
	e.mergeBuf = e.merged
	return true
}

// appendLabels writes the TimeSeries.labels fields of ls, as gogo's Marshal does.
func appendLabels(b []byte, ls []labels.Label) []byte {
	for _, l := range ls {
		b = append(b, 0x0a)
		b = binary.AppendUvarint(b, uint64(labelSize(l)))
		b = appendString(b, 0x0a, l.Name)
		b = appendString(b, 0x12, l.Value)
	}
	return b
}

// appendV1 writes one TimeSeries field with one sample (its labels already encoded in e.lbuf),
// byte for byte what gogo's Marshal writes for prompb.TimeSeries (proto3: zero value and zero
// timestamp are omitted).
func (e *encoder) appendV1(s *shardBuf, t int64, v float64) {
	ss := sampleSize(t, v)
	tsSize := len(e.lbuf) + 1 + uvarintLen(uint64(ss)) + ss
	b := s.buf
	b = append(b, 0x0a)
	b = binary.AppendUvarint(b, uint64(tsSize))
	b = append(b, e.lbuf...)
	b = append(b, 0x12)
	b = binary.AppendUvarint(b, uint64(ss))
	if v != 0 {
		b = append(b, 0x09)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	if t != 0 {
		b = append(b, 0x10)
		b = binary.AppendUvarint(b, uint64(t))
	}
	s.bytes += len(b) - len(s.buf)
	s.buf = b
}

func labelSize(l labels.Label) int {
	n := 0
	if len(l.Name) > 0 {
		n += 1 + uvarintLen(uint64(len(l.Name))) + len(l.Name)
	}
	if len(l.Value) > 0 {
		n += 1 + uvarintLen(uint64(len(l.Value))) + len(l.Value)
	}
	return n
}

func sampleSize(t int64, v float64) int {
	n := 0
	if v != 0 {
		n += 9
	}
	if t != 0 {
		n += 1 + uvarintLen(uint64(t))
	}
	return n
}

func appendString(b []byte, tag byte, s string) []byte {
	if len(s) == 0 {
		return b
	}
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func (e *encoder) appendV2(s *shardBuf, t int64, v float64) {
	start := len(s.refs)
	for _, l := range e.merged {
		s.refs = append(s.refs, s.symbols.Symbolize(e.internString(l.Name)), s.symbols.Symbolize(e.internString(l.Value)))
		s.bytes += len(l.Name) + len(l.Value) + 4
	}
	smp := writev2.Sample{Value: v, Timestamp: t}
	if e.start > 0 && e.start <= t {
		smp.StartTimestamp = e.start
	}
	s.samples = append(s.samples, smp)
	s.series = append(s.series, writev2.TimeSeries{
		LabelsRefs: s.refs[start:len(s.refs):len(s.refs)],
		Samples:    s.samples[len(s.samples)-1 : len(s.samples) : len(s.samples)],
		Metadata: writev2.Metadata{
			Type:    metricTypesV2[e.meta.Type],
			HelpRef: s.symbols.Symbolize(e.internString(e.meta.Help)),
			UnitRef: s.symbols.Symbolize(e.internString(e.meta.Unit)),
		},
	})
	s.bytes += 24 + len(e.meta.Help) + len(e.meta.Unit)
}

// internString returns a long-lived copy of s: the converter's label strings live in a buffer
// that is reused for the next sample, the symbol table must outlive it. Each string is copied
// once, not once per sample.
func (e *encoder) internString(s string) string {
	if is, ok := e.intern[s]; ok {
		return is
	}
	if len(e.intern) >= internLimit {
		clear(e.intern)
	}
	is := string([]byte(s))
	e.intern[is] = is
	return is
}

// flush closes the shard's current record, compressed, into e.out.
func (e *encoder) flush(s *shardBuf) {
	if s.meta.Count == 0 {
		return
	}
	raw := s.buf
	if e.v2 {
		req := writev2.Request{Symbols: s.symbols.Symbols(), Timeseries: s.series}
		var err error
		s.marshalBuf, err = req.OptimizedMarshal(s.marshalBuf[:0])
		if err != nil {
			// Marshal into a sized buffer only fails on a size mismatch: a bug, not bad input.
			panic(err)
		}
		raw = s.marshalBuf
	}
	e.out = append(e.out, pendingRecord{meta: s.meta, payload: s2.EncodeSnappy(e.nextSpare(len(raw)), raw)})
	s.meta = diskqueue.Meta{Tag: s.meta.Tag}
	s.buf = s.buf[:0]
	s.bytes = 0
	s.symbols.Reset()
	s.series = s.series[:0]
	s.refs = s.refs[:0]
	s.samples = s.samples[:0]
}

// nextSpare hands out a compression buffer reused across calls: records are copied into the
// queue's file before the next ConsumeMetrics call encodes again.
func (e *encoder) nextSpare(n int) []byte {
	i := len(e.out)
	for len(e.spare) <= i {
		e.spare = append(e.spare, nil)
	}
	need := s2.MaxEncodedLen(n)
	if cap(e.spare[i]) < need {
		e.spare[i] = make([]byte, need)
	}
	return e.spare[i][:need]
}

// finish flushes every shard and returns the records of this call.
func (e *encoder) finish() ([]diskqueue.Meta, [][]byte) {
	for i := range e.shards {
		e.flush(&e.shards[i])
	}
	metas := make([]diskqueue.Meta, len(e.out))
	payloads := make([][]byte, len(e.out))
	for i, r := range e.out {
		metas[i], payloads[i] = r.meta, r.payload
	}
	e.out = e.out[:0]
	return metas, payloads
}
