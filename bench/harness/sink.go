// Package harness runs the peer benchmarks and the reliability tests: a counting remote-write
// sink, a floor scraper, process CPU/RSS sampling from /proc, and the systems under test as real
// processes on loopback.
package harness

import (
	"errors"
	"fmt"
	"io"
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
// series and, per series, which scrape slots (timestamp / slot width) arrived, so a gap left by an
// outage is counted as lost samples. Anything but snappy-compressed protobuf is answered 415, so
// vmagent falls back from its own protocol to Prometheus remote write.
type Sink struct {
	srv  *http.Server
	ln   net.Listener
	slot int64 // milliseconds per slot; 0 = do not track slots

	mode   atomic.Int32 // sinkUp, or the injected behaviour
	status atomic.Int32 // HTTP status answered while mode is sinkDown
	delay  atomic.Int64 // nanoseconds to wait before answering

	requests, rejected, samples, dupes atomic.Int64

	errMu  sync.Mutex
	errors []statusShare // answered at random instead of accepting
	rng    *rand.Rand

	mu       sync.Mutex
	series   map[uint64]*seriesSlots
	names    map[string]string // distinct metric names (__name__), interned
	watching atomic.Bool       // set by Watch: spares every request the lock when nothing is watched
	watch    string            // a metric name whose series keep their labels (see Watch)
	watchV   float64           // the value a watched sample must have to be kept
	watched  map[string]*seriesSlots
	nodes    map[string]string // interned node label values
}

// seriesSlots holds the distinct timestamps a series arrived with, sorted (ms), staleness
// markers left out, and the series' name and node label (interned) for Delivered.
type seriesSlots struct {
	stamps     []int64
	name, node string
}

const (
	sinkUp int32 = iota
	sinkDown
)

// NewSink listens on a loopback port. slot is the scrape interval used to find gaps; 0 disables
// per-series slot tracking (cheaper: only counts and distinct series).
func NewSink(addr string, slot time.Duration) (*Sink, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sink: listen: %w", err)
	}
	s := &Sink{ln: ln, slot: slot.Milliseconds(), series: make(map[uint64]*seriesSlots), names: map[string]string{},
		nodes: map[string]string{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
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
	s.watch, s.watchV, s.watched = name, value, map[string]*seriesSlots{}
	s.watching.Store(true)
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
// other side of edgesim's Served. Only with slots.
func (s *Sink) Delivered(count func(name string) bool) (total int64, byNode map[string]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	byNode = map[string]int64{}
	for _, ss := range s.series {
		if ss == nil || !count(ss.name) {
			continue
		}
		n := int64(len(ss.stamps))
		byNode[ss.node] += n
		total += n
	}
	return total, byNode
}

// Stats is what the sink has counted since the last Reset.
type Stats struct {
	Requests int64 // accepted write requests
	Rejected int64 // requests answered with an error status
	Samples  int64 // samples (float and native histogram) in accepted requests
	Dupes    int64 // samples whose series already had their slot (resends); only with slots
	Series   int   // distinct series
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	n := len(s.series)
	s.mu.Unlock()
	return Stats{Requests: s.requests.Load(), Rejected: s.rejected.Load(), Samples: s.samples.Load(), Dupes: s.dupes.Load(), Series: n}
}

// Names returns the distinct metric names received since the last Reset, sorted.
func (s *Sink) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.names))
	for n := range s.names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Reset forgets everything counted.
func (s *Sink) Reset() {
	s.mu.Lock()
	s.series = make(map[uint64]*seriesSlots)
	s.names = map[string]string{}
	s.nodes = map[string]string{}
	s.mu.Unlock()
	s.requests.Store(0)
	s.rejected.Store(0)
	s.samples.Store(0)
	s.dupes.Store(0)
}

// Gaps counts, over all series, the samples missing between each series' first and last
// timestamp within [firstMs, lastMs]: a step between consecutive timestamps of n intervals (to
// the nearest) means n-1 samples never arrived. Measuring steps rather than slots on a fixed
// grid keeps scrape jitter from counting as loss. Series that stop (pods churn) do not count.
func (s *Sink) Gaps(firstMs, lastMs int64) int64 {
	var gaps int64
	s.eachSeries(firstMs, lastMs, func(stamps []int64) {
		for i := 1; i < len(stamps); i++ {
			if n := roundDiv(stamps[i]-stamps[i-1], s.slot); n > 1 {
				gaps += n - 1
			}
		}
	})
	return gaps
}

// Covered counts the distinct (series, timestamp) pairs received within [firstMs, lastMs].
func (s *Sink) Covered(firstMs, lastMs int64) int64 {
	var n int64
	s.eachSeries(firstMs, lastMs, func(stamps []int64) { n += int64(len(stamps)) })
	return n
}

// eachSeries calls fn with each series' timestamps within range (a shared slice: do not keep it).
func (s *Sink) eachSeries(firstMs, lastMs int64, fn func(stamps []int64)) {
	if s.slot == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.series {
		lo, _ := slices.BinarySearch(ss.stamps, firstMs)
		hi, found := slices.BinarySearch(ss.stamps, lastMs)
		if found {
			hi++
		}
		if hi > lo {
			fn(ss.stamps[lo:hi])
		}
	}
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

// count walks a prometheus.WriteRequest without decoding it into structs: field 1 is a
// TimeSeries (1 labels, 2 samples{1 value, 2 timestamp}, 4 histograms{... 15 timestamp}).
func (s *Sink) count(b []byte) error {
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
			if err := s.countSeries(ts); err != nil {
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
	return nil
}

func (s *Sink) countSeries(b []byte) error {
	h := xxhash.New()
	var name, node []byte
	var stamps []int64
	var buf [64]int64
	stamps = buf[:0]
	var lbls, samples [][]byte
	count := 0
	for len(b) > 0 {
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
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errProto
		}
		b = b[n:]
		switch num {
		case 1: // label: hashed as encoded; senders sort labels, so a series hashes the same each time
			h.Write(v)
			h.Write([]byte{0xff})
			switch ln, lv := labelPair(v); string(ln) {
			case "__name__":
				name = lv
			case "node":
				node = lv
			}
			lbls = append(lbls, v)
		case 2:
			count++
			samples = append(samples, v)
			if !value.IsStaleNaN(fieldDouble(v, 1)) {
				stamps = append(stamps, fieldInt(v, 2))
			}
		case 4:
			count++
			stamps = append(stamps, fieldInt(v, 15))
		}
	}
	s.samples.Add(int64(count))
	s.record(h.Sum64(), name, node, stamps)
	s.recordWatched(name, lbls, samples)
	return nil
}

// recordWatched keeps the timestamps of the float samples (encoded Sample messages) whose value
// is the watched one.
func (s *Sink) recordWatched(name []byte, lbls, samples [][]byte) {
	if !s.watching.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watch == "" || string(name) != s.watch {
		return
	}
	key := labelsText(lbls)
	ss := s.watched[key]
	if ss == nil {
		ss = &seriesSlots{}
		s.watched[key] = ss
	}
	for _, smp := range samples {
		if fieldDouble(smp, 1) == s.watchV {
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

func (s *Sink) record(key uint64, name, node []byte, stamps []int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	iname := ""
	if name != nil {
		iname = intern(s.names, name)
	}
	if s.slot == 0 {
		if _, ok := s.series[key]; !ok {
			s.series[key] = nil
		}
		return
	}
	ss := s.series[key]
	if ss == nil {
		ss = &seriesSlots{name: iname, node: intern(s.nodes, node)}
		s.series[key] = ss
	}
	for _, ts := range stamps {
		if ss.add(ts) {
			s.dupes.Add(1)
		}
	}
}

// intern returns the string in m equal to b, adding it when new.
func intern(m map[string]string, b []byte) string {
	if v, ok := m[string(b)]; ok {
		return v
	}
	v := string(b)
	m[v] = v
	return v
}

func roundDiv(a, b int64) int64 { return (a + b/2) / b }

// add inserts ts and reports whether it was there already. Samples usually arrive in order, so
// this is an append; a backlog arriving after newer samples is inserted in place.
func (ss *seriesSlots) add(ts int64) bool {
	n := len(ss.stamps)
	if n == 0 || ts > ss.stamps[n-1] {
		ss.stamps = append(ss.stamps, ts)
		return false
	}
	i, found := slices.BinarySearch(ss.stamps, ts)
	if found {
		return true
	}
	ss.stamps = slices.Insert(ss.stamps, i, ts)
	return false
}
