package remotewriteexporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/diskqueue"
)

// sender drains the buffer: one reader hands records to shards by their tag (the shard their
// series hash to), every shard batches and posts in order, and acknowledgements advance the
// buffer's committed position only over a contiguous prefix, so a restart resumes at the
// oldest record not yet delivered.
type sender struct {
	endpoint   string
	client     *http.Client
	q          *diskqueue.Queue
	tel        *telemetry
	log        *zap.Logger
	acks       *ackTracker
	userAgent  string
	maxSamples int
	maxBytes   int
	gate       *gate
	auth       func(*http.Request) error
	shards     []chan item
	refusals   *refusalLog
	// stop is closed when shutdown begins: no new batches and no more retries, but a request
	// already on the wire may finish and be acknowledged (fewer resends after a restart).
	stop chan struct{}
}

type item struct {
	rec diskqueue.Record
	seq uint64
}

// shardQueueLen is how many records may wait per shard; it bounds memory while a shard retries.
const shardQueueLen = 128

// run sends until ctx ends. Closing s.stop first lets requests in flight finish.
func (s *sender) run(ctx context.Context, nShards int) {
	readCtx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	go func() {
		select {
		case <-s.stop:
			cancelRead()
		case <-readCtx.Done():
		}
	}()
	var wg sync.WaitGroup
	s.shards = make([]chan item, nShards)
	for i := range s.shards {
		s.shards[i] = make(chan item, shardQueueLen)
		wg.Add(1)
		go func(in <-chan item) {
			defer wg.Done()
			newShard(s).loop(readCtx, ctx, in)
		}(s.shards[i])
	}
	s.readLoop(readCtx)
	wg.Wait()
}

func (s *sender) readLoop(ctx context.Context) {
	for {
		rec, err := s.q.Read(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, diskqueue.ErrClosed) {
				return
			}
			s.log.Error("Reading the buffer failed", zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		seq := s.acks.add(rec)
		select {
		case s.shards[int(rec.Tag&^tagV2)%len(s.shards)] <- item{rec: rec, seq: seq}:
		case <-ctx.Done():
			return
		}
	}
}

type shard struct {
	s     *sender
	batch []item
	raw   []byte
	enc   []byte
	seqs  []uint64
	carry *item
}

func newShard(s *sender) *shard { return &shard{s: s} }

// loop takes batches while readCtx lives and sends them with sendCtx, which outlives it by
// the shutdown grace period.
func (sh *shard) loop(readCtx, sendCtx context.Context, in <-chan item) {
	for {
		if !sh.collect(readCtx, in) {
			return
		}
		samples := 0
		for _, it := range sh.batch {
			samples += int(it.rec.Count)
		}
		body, err := sh.body()
		if err != nil {
			sh.s.log.Error("Dropping unreadable buffer records", zap.Int("samples", samples), zap.Error(err))
			sh.s.tel.drop(diskqueue.ReasonCorrupt, len(sh.batch), samples)
		} else if !sh.s.send(sendCtx, request{body: body, v2: isV2(sh.batch[0].rec), samples: samples, records: len(sh.batch)}) {
			return // shutting down: unacknowledged records are read again after a restart
		}
		sh.seqs = sh.seqs[:0]
		for _, it := range sh.batch {
			sh.seqs = append(sh.seqs, it.seq)
		}
		if err := sh.s.acks.done(sh.seqs); err != nil {
			sh.s.log.Error("Persisting the buffer position failed", zap.Error(err))
		}
	}
}

// collect takes the next record and, for RW 1.0, whatever else is waiting that fits in one
// request: a backlog drains in full-size requests.
func (sh *shard) collect(ctx context.Context, in <-chan item) bool {
	sh.batch = sh.batch[:0]
	if sh.carry != nil {
		sh.batch = append(sh.batch, *sh.carry)
		sh.carry = nil
	} else {
		select {
		case it := <-in:
			sh.batch = append(sh.batch, it)
		case <-ctx.Done():
			return false
		}
	}
	if isV2(sh.batch[0].rec) {
		return true // RW 2.0 records carry their own symbol table and are sent as they are
	}
	samples, size := int(sh.batch[0].rec.Count), decodedLen(sh.batch[0].rec.Payload)
	for {
		select {
		case it := <-in:
			n := decodedLen(it.rec.Payload)
			if isV2(it.rec) || samples+int(it.rec.Count) > sh.s.maxSamples || size+n > sh.s.maxBytes {
				sh.carry = &it
				return true
			}
			sh.batch = append(sh.batch, it)
			samples += int(it.rec.Count)
			size += n
		default:
			return true
		}
	}
}

func isV2(r diskqueue.Record) bool { return r.Tag&tagV2 != 0 }

func decodedLen(p []byte) int {
	n, err := s2.DecodedLen(p)
	if err != nil {
		return 0
	}
	return n
}

// body returns the compressed request for the batch. One record is sent as stored; several
// RW 1.0 records are concatenated uncompressed (a valid WriteRequest) and compressed once.
func (sh *shard) body() ([]byte, error) {
	if len(sh.batch) == 1 {
		return sh.batch[0].rec.Payload, nil
	}
	sh.raw = sh.raw[:0]
	for _, it := range sh.batch {
		n, err := s2.DecodedLen(it.rec.Payload)
		if err != nil {
			return nil, fmt.Errorf("record at %d: %w", it.rec.Offset, err)
		}
		start := len(sh.raw)
		sh.raw = growLen(sh.raw, n)
		if _, err := s2.Decode(sh.raw[start:], it.rec.Payload); err != nil {
			return nil, fmt.Errorf("record at %d: %w", it.rec.Offset, err)
		}
	}
	sh.enc = growLen(sh.enc[:0], s2.MaxEncodedLen(len(sh.raw)))
	return s2.EncodeSnappy(sh.enc, sh.raw), nil
}

func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// headerSamplesWritten is the RW 2.0 response header that counts the samples stored.
const headerSamplesWritten = "X-Prometheus-Remote-Write-Samples-Written"

// statusUnconfirmed stands for a 2xx answer to an RW 2.0 request without the written-samples
// header: the data was most likely not stored.
const statusUnconfirmed = 299

// request is one remote-write request: the batch a shard collected, or a part of it.
type request struct {
	body    []byte
	v2      bool
	samples int
	records int // buffer records to count if it is dropped (a batch's records are counted once)
}

// answer is what a remote end's reply means for the data, after RW 2.0's rules: only a
// network error, 429 and 5xx may succeed on a resend; any other 4xx will not, and the text of
// the answer does not change that.
type answer int

const (
	answerDelivered answer = iota
	answerRetry            // network error, 429, 5xx: back off, send the same request again
	answerBadData          // 400, 409 (Thanos Receive), 422: split to isolate what is refused
	answerTooLarge         // 413: split until the parts fit
	answerRefused          // 401, 403, 404 and other 4xx: hold the data, probe once per max_interval
)

func classify(status int, err error) answer {
	switch {
	case err != nil:
		return answerRetry
	case status == statusUnconfirmed:
		return answerRefused
	case status/100 == 2:
		return answerDelivered
	case status == http.StatusTooManyRequests || status/100 == 5:
		return answerRetry
	case status == http.StatusBadRequest || status == http.StatusConflict || status == http.StatusUnprocessableEntity:
		return answerBadData
	case status == http.StatusRequestEntityTooLarge:
		return answerTooLarge
	case status/100 == 4:
		return answerRefused
	}
	return answerRetry // 1xx and 3xx that the client did not follow: a proxy or endpoint problem
}

// splitBudget bounds the requests spent isolating the series a remote end refuses in one
// batch: bisection finds a few bad series in a full batch within it (about 2·log2(series)
// requests each). Past it, a refused part is dropped whole. Prometheus, Thanos Receive, Cortex
// and Mimir store the valid samples of a refused request themselves, so what such a drop
// counts was mostly stored.
const splitBudget = 64

// send posts req until it is delivered, or until what the remote end refuses of it is dropped
// and counted. It returns false when ctx ends first, or when a try fails after shutdown began.
func (s *sender) send(ctx context.Context, req request) bool {
	budget := splitBudget
	return s.sendPart(ctx, req, &budget)
}

func (s *sender) sendPart(ctx context.Context, req request, budget *int) bool {
	for {
		probe, ok := s.gate.acquire(ctx, s.stop)
		if !ok {
			return false
		}
		start := time.Now()
		status, retryAfter, reason, err := s.post(ctx, req.body, req.v2)
		elapsed := time.Since(start).Seconds()
		if ctx.Err() != nil {
			s.gate.abandon(probe)
			return false
		}
		switch a := classify(status, err); a {
		case answerDelivered:
			s.gate.succeed(probe)
			s.tel.latency.Record(ctx, elapsed, s.tel.outcome[outcomeSuccess])
			s.tel.sent.Add(ctx, int64(req.samples))
			s.tel.sentTotal.Add(int64(req.samples))
			return true
		case answerBadData, answerTooLarge:
			s.gate.succeed(probe) // the remote end works: it read the request and answered about it
			s.tel.latency.Record(ctx, elapsed, s.tel.outcome[outcomeRejected])
			return s.split(ctx, req, status, reason, budget)
		default:
			s.tel.latency.Record(ctx, elapsed, s.tel.outcome[outcomeRetry])
			wait := s.gate.fail(probe, a == answerRefused, retryAfter)
			if err == nil {
				s.tel.refused(status)
			}
			s.refusals.report(status, reason, err, req.v2, wait)
		}
		select {
		case <-s.stop:
			return false
		default:
		}
		s.tel.retried.Add(ctx, int64(req.samples))
	}
}

// split answers a 413 or a refusal of the data (400, 409, 422): the request is sent again as
// two halves of its series, each split again while it is refused. A single series that is still
// refused is dropped and counted: too_large after a 413, rejected otherwise. Past splitBudget
// requests a refused part is dropped whole, counted as rejected.
func (s *sender) split(ctx context.Context, req request, status int, reason string, budget *int) bool {
	drop := reasonRejected
	if status == http.StatusRequestEntityTooLarge {
		drop = reasonTooLarge
	}
	halves, counts, err := splitRequest(req.body, req.v2)
	switch {
	case err != nil:
		s.log.Error("Remote end refused a batch that cannot be split, dropping it", zap.Int("status", status),
			zap.String("reason", reason), zap.Int("samples", req.samples), zap.Error(err))
	case len(halves) < 2:
		s.log.Error("Remote end refused a single series, dropping its samples", zap.Int("status", status),
			zap.String("reason", reason), zap.Int("samples", req.samples), zap.Int("bytes", len(req.body)))
	case *budget < len(halves) && drop == reasonRejected:
		s.log.Error("Remote end refused a batch and isolating the refused series took too many requests, dropping the rest of it",
			zap.Int("status", status), zap.String("reason", reason), zap.Int("samples", req.samples))
	default:
		s.log.Debug("Remote end refused a batch, sending it in halves", zap.Int("status", status),
			zap.String("reason", reason), zap.Int("bytes", len(req.body)))
		*budget -= len(halves)
		for i, h := range halves {
			part := request{body: h, v2: req.v2, samples: counts[i]}
			if i == 0 {
				part.records = req.records
			}
			if !s.sendPart(ctx, part, budget) {
				return false
			}
		}
		return true
	}
	s.tel.drop(drop, req.records, req.samples)
	return true
}

// splitRequest decodes a request body and re-encodes its series as two requests. A request
// with one series comes back whole (one part). RW 2.0 halves each carry the full symbol table.
func splitRequest(body []byte, v2 bool) ([][]byte, []int, error) {
	raw, err := s2.Decode(nil, body)
	if err != nil {
		return nil, nil, fmt.Errorf("decompress: %w", err)
	}
	if v2 {
		return splitV2(raw)
	}
	return splitV1(raw)
}

func splitV1(raw []byte) ([][]byte, []int, error) {
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, nil, fmt.Errorf("decode: %w", err)
	}
	return halve(raw, req.Timeseries, countV1, func(ts []prompb.TimeSeries, first bool) ([]byte, error) {
		half := prompb.WriteRequest{Timeseries: ts}
		if first {
			half.Metadata = req.Metadata
		}
		return half.Marshal()
	})
}

func splitV2(raw []byte) ([][]byte, []int, error) {
	var req writev2.Request
	if err := req.Unmarshal(raw); err != nil {
		return nil, nil, fmt.Errorf("decode: %w", err)
	}
	return halve(raw, req.Timeseries, countV2, func(ts []writev2.TimeSeries, _ bool) ([]byte, error) {
		half := writev2.Request{Symbols: req.Symbols, Timeseries: ts}
		return half.Marshal()
	})
}

// halve encodes each half of series with marshal (told whether it is the first half) and
// compresses it; raw, the decoded request, comes back whole when it has one series.
func halve[T any](raw []byte, series []T, count func([]T) int, marshal func(half []T, first bool) ([]byte, error)) ([][]byte, []int, error) {
	if len(series) < 2 {
		return [][]byte{raw}, []int{count(series)}, nil
	}
	mid := len(series) / 2
	out := make([][]byte, 0, 2)
	counts := make([]int, 0, 2)
	for i, half := range [][]T{series[:mid], series[mid:]} {
		b, err := marshal(half, i == 0)
		if err != nil {
			return nil, nil, fmt.Errorf("encode: %w", err)
		}
		out = append(out, s2.EncodeSnappy(nil, b))
		counts = append(counts, count(half))
	}
	return out, counts, nil
}

func countV1(ts []prompb.TimeSeries) int {
	n := 0
	for _, t := range ts {
		n += len(t.Samples) + len(t.Histograms)
	}
	return n
}

func countV2(ts []writev2.TimeSeries) int {
	n := 0
	for _, t := range ts {
		n += len(t.Samples) + len(t.Histograms)
	}
	return n
}

// refusalLog rate-limits the log of failed tries: a remote end refusing every request for an
// hour would otherwise log every retry of every shard. The first failure after a quiet
// period is logged at once; later ones at most once per refusalLogEvery, with the number
// of failures not logged in between.
type refusalLog struct {
	log   *zap.Logger
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	quiet int // failures not logged since last
}

const refusalLogEvery = 30 * time.Second

func (r *refusalLog) report(status int, reason string, err error, v2 bool, wait time.Duration) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.quiet++
		r.mu.Unlock()
		return
	}
	suppressed := r.quiet
	r.last, r.quiet = now, 0
	r.mu.Unlock()
	fields := []zap.Field{zap.Int("status", status), zap.String("reason", reason), zap.Error(err),
		zap.Duration("retry_in", wait), zap.Int("failures_not_logged", suppressed)}
	switch {
	case err != nil:
		r.log.Warn("Remote write failed, keeping the data and retrying", fields...)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		r.log.Error("Remote end refuses our credentials; keeping the data, holding the sending and probing once per retry_on_failure.max_interval. Check auth, basic_auth, bearer_token_file, headers and the remote end's authorization", fields...)
	case status == http.StatusNotFound:
		r.log.Error("Remote end answers 404; keeping the data, holding the sending and probing once per retry_on_failure.max_interval. Check endpoint", fields...)
	case status == http.StatusUnsupportedMediaType || status == statusUnconfirmed:
		r.log.Error("Remote end does not accept this remote-write protocol version; keeping the data, holding the sending and probing once per retry_on_failure.max_interval. Check protocol_version",
			append(fields, zap.Bool("rw2", v2))...)
	case status/100 == 4 && status != http.StatusTooManyRequests:
		r.log.Error("Remote end refuses our requests; keeping the data, holding the sending and probing once per retry_on_failure.max_interval", fields...)
	default:
		r.log.Warn("Remote write failed, keeping the data and retrying", fields...)
	}
}

// post sends one request and returns the status, the Retry-After delay if any, and the first
// line of the server's answer on failure.
func (s *sender) post(ctx context.Context, body []byte, v2 bool) (int, time.Duration, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", err
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("User-Agent", s.userAgent)
	if v2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	if s.auth != nil {
		if err := s.auth(req); err != nil {
			return 0, 0, "", err
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	var reason string
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		reason = strings.TrimSpace(string(msg))
	} else if v2 && resp.Header.Get(headerSamplesWritten) == "" {
		// RW 2.0 receivers must say what they wrote. A 2xx without it comes from a receiver that
		// read the body as RW 1.0, found nothing in it and stored nothing (Thanos Receive v0.42
		// does so): not a delivery.
		return statusUnconfirmed, 0, "2xx without " + headerSamplesWritten + ": the remote end does not speak remote write 2.0", nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), reason, nil
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// ackTracker commits the buffer position over the longest prefix of records whose delivery
// ended (sent or dropped), however the shards interleave.
type ackTracker struct {
	q       *diskqueue.Queue
	now     func() time.Time
	mu      sync.Mutex
	base    uint64 // sequence number of entries[0]
	next    uint64
	entries []ackEntry
}

type ackEntry struct {
	end  uint64
	minT int64
	done bool
}

func (a *ackTracker) add(rec diskqueue.Record) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, ackEntry{end: rec.End, minT: rec.MinTime})
	a.next++
	return a.next - 1
}

func (a *ackTracker) done(seqs []uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range seqs {
		a.entries[s-a.base].done = true
	}
	n := 0
	for n < len(a.entries) && a.entries[n].done {
		n++
	}
	if n == 0 {
		return nil
	}
	end := a.entries[n-1].end
	a.entries = append(a.entries[:0], a.entries[n:]...)
	a.base += uint64(n)
	return a.q.Commit(end)
}

// oldestAge is the age of the oldest sample of the oldest unacknowledged record; buffered
// records the reader has not reached yet are newer than it.
func (a *ackTracker) oldestAge() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) == 0 {
		return 0
	}
	minT := a.entries[0].minT
	for _, e := range a.entries[1:] {
		minT = min(minT, e.minT)
	}
	return max(0, a.now().Sub(time.UnixMilli(minT)).Seconds())
}
