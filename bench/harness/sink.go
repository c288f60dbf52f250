// Package harness runs the peer benchmarks and the reliability tests: a counting remote-write
// sink, a floor scraper, process CPU/RSS sampling from /proc, and the systems under test as real
// processes on loopback.
package harness

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/value"
	"google.golang.org/protobuf/encoding/protowire"
)

// Sink is a Prometheus remote-write 1.0 receiver that counts what it is sent: samples, distinct
// series and, with pairs on, the distinct (series, timestamp) pairs that arrived (see
// Delivered), the exact other side of edgesim's Served. Anything but snappy-compressed protobuf is
// answered 415, so vmagent falls back from its own protocol to Prometheus remote write.
type Sink struct {
	srv   *http.Server
	ln    net.Listener
	pairs bool // keep each series' timestamps

	mode   atomic.Int32 // sinkUp, or the injected behaviour
	status atomic.Int32 // HTTP status answered while mode is sinkDown
	delay  atomic.Int64 // nanoseconds to wait before answering

	requests, rejected, samples atomic.Int64

	errMu  sync.Mutex
	errors []statusShare // answered at random instead of accepting
	rng    *rand.Rand

	mu      sync.Mutex
	store   *pairStore
	watch   atomic.Pointer[watchSpec] // set by Watch; read without the lock on every series
	watched map[string]*seriesSlots
}

// watchSpec is a metric name whose series keep their labels and the value a sample of theirs
// must have to be kept (see Watch).
type watchSpec struct {
	name  string
	value float64
}

// seriesSlots holds the distinct timestamps (ms, sorted) of a watched series.
type seriesSlots struct {
	stamps []int64
}

const (
	sinkUp int32 = iota
	sinkDown
)

// NewSink listens on a loopback port. With pairs, the sink keeps every series' timestamps for
// Delivered; without, it counts samples and distinct series only.
func NewSink(addr string, pairs bool) (*Sink, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink: listen: %w", err)
	}
	s := newSinkState(pairs)
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// newSinkState is a Sink that counts, without a server.
func newSinkState(pairs bool) *Sink {
	return &Sink{pairs: pairs, store: newStore(pairs)}
}

// newStore keeps timestamps from a day before now on (for 49 days).
func newStore(pairs bool) *pairStore {
	return newPairStore(pairs, time.Now().Add(-24*time.Hour).UnixMilli())
}

// URL is the remote-write endpoint.
func (s *Sink) URL() string { return "http://" + s.ln.Addr().String() + "/api/v1/write" }

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

// SetDown makes the sink answer status (e.g. 503) to every write without reading it; 0 = back up.
func (s *Sink) SetDown(status int) {
	if status == 0 {
		s.mode.Store(sinkUp)
		return
	}
	s.status.Store(int32(status))
	s.mode.Store(sinkDown)
}

type statusShare struct {
	status int
	share  float64
}

// SetErrors makes the sink answer each status with its share of probability (e.g. {429: 0.2,
// 500: 0.2, 400: 0.1}) instead of accepting the request; nil restores.
func (s *Sink) SetErrors(shares map[int]float64) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	s.errors = s.errors[:0]
	for st, sh := range shares {
		s.errors = append(s.errors, statusShare{st, sh})
	}
	if s.rng == nil {
		s.rng = rand.New(rand.NewPCG(1, 2))
	}
}

// injected picks the error to answer, or 0.
func (s *Sink) injected() int {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if len(s.errors) == 0 {
		return 0
	}
	x := s.rng.Float64()
	for _, e := range s.errors {
		if x < e.share {
			return e.status
		}
		x -= e.share
	}
	return 0
}

// SetDelay makes every answer wait d (a slow remote store).
func (s *Sink) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// Watch makes the sink keep, for each series of metric name, its labels and the timestamps of
// its samples equal to value, so a test can tell which target missed which round (see Watched):
// Watch("up", 1) keeps the successful scrapes. One name at a time; only a few series should
// carry it.
func (s *Sink) Watch(name string, value float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watched = map[string]*seriesSlots{}
	s.watch.Store(&watchSpec{name: name, value: value})
}

// Watched returns the watched series' timestamps (ms, sorted) by their labels, written as
// name="value" pairs separated by commas in the order the sender sent them.
func (s *Sink) Watched() map[string][]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]int64, len(s.watched))
	for k, ss := range s.watched {
		out[k] = slices.Clone(ss.stamps)
	}
	return out
}

// Delivered counts the distinct (series, timestamp) pairs received of the series whose name
// count accepts, staleness markers left out, in total and by the series' node label: the
// other side of edgesim's Served. Only with pairs.
func (s *Sink) Delivered(count func(name string) bool) (total int64, byNode map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.delivered(count)
}

// Stats is what the sink has counted since the last Reset.
type Stats struct {
	Requests int64 // accepted write requests
	Rejected int64 // requests answered with an error status
	Samples  int64 // samples (float and native histogram) in accepted requests
	Dupes    int64 // samples whose series already had their timestamp (resends); only with pairs
	Series   int   // distinct series
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	n, dupes := len(s.store.entries), s.store.dupes
	s.mu.Unlock()
	return Stats{Requests: s.requests.Load(), Rejected: s.rejected.Load(), Samples: s.samples.Load(), Dupes: dupes, Series: n}
}

// Names returns the distinct metric names received since the last Reset, sorted.
func (s *Sink) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(slices.Sorted(maps.Keys(s.store.names.ids)), func(n string) bool { return n == "" })
}

// Reset forgets everything counted.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.store = newStore(s.pairs)
	s.mu.Unlock()
	s.requests.Store(0)
	s.rejected.Store(0)
	s.samples.Store(0)
}

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	if s.mode.Load() == sinkDown {
		s.rejected.Add(1)
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(int(s.status.Load()))
		return
	}
	if st := s.injected(); st != 0 {
		io.Copy(io.Discard, r.Body)
		s.reject(w, st, "injected error")
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/api/v1/write" {
		s.reject(w, http.StatusNotFound, "not a remote-write request")
		return
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "snappy" {
		s.reject(w, http.StatusUnsupportedMediaType, "unsupported Content-Encoding "+enc)
		return
	}
	compressed, err := io.ReadAll(r.Body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "snappy: "+err.Error())
		return
	}
	if err := s.count(raw); err != nil {
		s.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	s.requests.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sink) reject(w http.ResponseWriter, status int, msg string) {
	s.rejected.Add(1)
	http.Error(w, msg, status)
}

var errProto = errors.New("malformed protobuf")

// batch is one request's series, recorded under one lock: key, name and node of each (the
// latter two slices of the request), and its timestamps as a range of stamps.
type batch struct {
	series []batchSeries
	stamps []int64
}

type batchSeries struct {
	key        uint64
	name, node []byte
	from, to   int
}

var batches = sync.Pool{New: func() any { return new(batch) }}

// count walks a prometheus.WriteRequest without decoding it into structs: field 1 is a
// TimeSeries (1 labels, 2 samples{1 value, 2 timestamp}, 4 histograms{... 15 timestamp}). It is
// written by hand, without allocating per series, because at a thousand nodes' drain the sink
// takes a million samples a second on the cores the system under test needs.
func (s *Sink) count(b []byte) error {
	bt := batches.Get().(*batch)
	defer func() {
		bt.series, bt.stamps = bt.series[:0], bt.stamps[:0]
		batches.Put(bt)
	}()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			ts, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errProto
			}
			if err := s.countSeries(bt, ts); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
	}
	s.record(bt)
	return nil
}

// countSeries adds one TimeSeries message to bt. The series' key hashes its encoded labels (tag
// and length included, so it is unambiguous); senders sort labels, so a series hashes the same
// each time.
func (s *Sink) countSeries(bt *batch, b []byte) error {
	var h xxhash.Digest
	h.Reset()
	ser := batchSeries{from: len(bt.stamps)}
	count := 0
	watched := false
	whole := b
	for len(b) > 0 {
		field := b
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return errProto
			}
			b = b[n:]
			continue
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return errProto
		}
		b = b[m:]
		switch num {
		case 1:
			h.Write(field[:n+m])
			switch ln, lv := labelPair(v); string(ln) {
			case "__name__":
				ser.name = lv
				if w := s.watch.Load(); w != nil && string(lv) == w.name {
					watched = true
				}
			case "node":
				ser.node = lv
			}
		case 2:
			count++
			if !value.IsStaleNaN(fieldDouble(v, 1)) {
				bt.stamps = append(bt.stamps, fieldInt(v, 2))
			}
		case 4:
			count++
			bt.stamps = append(bt.stamps, fieldInt(v, 15))
		}
	}
	s.samples.Add(int64(count))
	ser.key, ser.to = h.Sum64(), len(bt.stamps)
	bt.series = append(bt.series, ser)
	if watched {
		s.recordWatched(whole)
	}
	return nil
}

func (s *Sink) record(bt *batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ser := range bt.series {
		s.store.add(ser.key, ser.name, ser.node, bt.stamps[ser.from:ser.to])
	}
}

// recordWatched keeps the labels of a watched series (a TimeSeries message) and the timestamps
// of its float samples whose value is the watched one.
func (s *Sink) recordWatched(b []byte) {
	var lbls, samples [][]byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return
		}
		b = b[n+m:]
		switch num {
		case 1:
			lbls = append(lbls, v)
		case 2:
			samples = append(samples, v)
		}
	}
	key := labelsText(lbls)
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.watched[key]
	if ss == nil {
		ss = &seriesSlots{}
		s.watched[key] = ss
	}
	want := s.watch.Load().value
	for _, smp := range samples {
		if fieldDouble(smp, 1) == want {
			ss.add(fieldInt(smp, 2))
		}
	}
}

// fieldDouble returns fixed64 field want of message b as a float64 (0 when absent).
func fieldDouble(b []byte, want protowire.Number) float64 {
	return math.Float64frombits(fieldBits(b, want, protowire.Fixed64Type))
}

// labelsText writes Label messages (1 name, 2 value) as name="value",...
func labelsText(lbls [][]byte) string {
	var b []byte
	for i, l := range lbls {
		if i > 0 {
			b = append(b, ',')
		}
		var n, v []byte
		for len(l) > 0 {
			num, _, k := protowire.ConsumeTag(l)
			if k < 0 {
				break
			}
			l = l[k:]
			f, k := protowire.ConsumeBytes(l)
			if k < 0 {
				break
			}
			l = l[k:]
			if num == 1 {
				n = f
			} else {
				v = f
			}
		}
		b = append(b, n...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, string(v))
	}
	return string(b)
}

// labelPair returns a Label message's name (1) and value (2).
func labelPair(b []byte) (name, value []byte) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return name, value
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return name, value
		}
		b = b[n:]
		switch num {
		case 1:
			name = v
		case 2:
			value = v
		}
	}
	return name, value
}

// fieldInt returns varint field want of message b (0 when absent).
func fieldInt(b []byte, want protowire.Number) int64 {
	return int64(fieldBits(b, want, protowire.VarintType))
}

// fieldBits returns the 64 bits of scalar field want of message b, of wire type wt (varint or
// fixed64); 0 when absent.
func fieldBits(b []byte, want protowire.Number, wt protowire.Type) uint64 {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0
		}
		b = b[n:]
		if num == want && typ == wt {
			var v uint64
			if wt == protowire.Fixed64Type {
				v, _ = protowire.ConsumeFixed64(b)
			} else {
				v, _ = protowire.ConsumeVarint(b)
			}
			return v
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return 0
		}
		b = b[n:]
	}
	return 0
}

// add inserts ts and reports whether it was there already. Samples usually arrive in order, so
// this is an append; a backlog arriving after newer samples is inserted in place.
func (ss *seriesSlots) add(ts int64) bool {
	var added bool
	ss.stamps, added = insertSorted(ss.stamps, ts)
	return !added
}

// insertSorted adds v to the sorted s unless it is there, and says whether it added it. Values
// usually arrive in order, so the common case is an append.
func insertSorted[T cmp.Ordered](s []T, v T) ([]T, bool) {
	if n := len(s); n == 0 || v > s[n-1] {
		return append(s, v), true
	}
	i, found := slices.BinarySearch(s, v)
	if found {
		return s, false
	}
	return slices.Insert(s, i, v), true
}
