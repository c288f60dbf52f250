package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"golang.org/x/time/rate"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// The kubelet's stream parameter values (PodLogOptions.Stream).
const (
	streamStdout = "Stdout"
	streamStderr = "Stderr"
)

// lineOverhead is the kubelet's timestamp prefix (RFC3339Nano, a space) and the newline, which
// do not count towards max_line_size.
const lineOverhead = len("2006-01-02T15:04:05.999999999Z07:00 \n")

// streamKey names a followed stream: a container, and with split streams its stdout or stderr.
type streamKey struct {
	ns, pod, container string
	stream             string // "", Stdout or Stderr
}

func (k streamKey) String() string {
	s := k.ns + "/" + k.pod + "/" + k.container
	if k.stream != "" {
		s += "/" + k.stream
	}
	return s
}

// storageKey is where the stream's position is kept.
func (k streamKey) storageKey() string { return "containerlog/" + k.String() }

// path is the kubelet's containerLogs request for the stream, resuming at since (whole seconds,
// as sinceTime is RFC3339; the lines of that second before the position are skipped).
func (k streamKey) path(since time.Time) string {
	q := url.Values{"follow": {"true"}, "timestamps": {"true"}}
	if k.stream != "" {
		q.Set("stream", k.stream)
	}
	if !since.IsZero() {
		q.Set("sinceTime", since.UTC().Truncate(time.Second).Format(time.RFC3339))
	}
	return "/containerLogs/" + url.PathEscape(k.ns) + "/" + url.PathEscape(k.pod) + "/" + url.PathEscape(k.container) + "?" + q.Encode()
}

// position is where a stream stands: the timestamp of its last line and how many lines had
// exactly that timestamp, so a resume from that timestamp skips those and no other.
type position struct {
	TS time.Time `json:"ts"`
	N  int       `json:"n"`
}

func (p position) encode() []byte {
	data, _ := json.Marshal(p) // a time and an int always encode
	return data
}

func decodePosition(data []byte) (position, error) {
	var p position
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return position{}, err
	}
	if p.N < 0 || p.N > 0 && p.TS.IsZero() {
		return position{}, fmt.Errorf("position %s out of range", data)
	}
	return p, nil
}

// logLine is a line read and not yet accepted by the pipeline.
type logLine struct {
	ts        time.Time
	body      string
	truncated bool
	pos       position // the stream's position after this line
}

// follower follows one stream, reconnecting from its position whenever the stream ends.
type follower struct {
	r      *Receiver
	key    streamKey
	limit  *rate.Limiter
	node   atomic.Pointer[discovery.Target]
	cancel context.CancelFunc
	done   chan struct{}
	space  chan struct{} // signalled when delivered lines free room in pending

	mu      sync.Mutex
	pending []logLine
	bytes   int64    // of the pending lines' bodies
	read    position // after the last line read
	skip    int      // lines at read.TS still to skip after a resume
	loaded  bool     // read is known (from the store or an earlier follower)
	buf     []byte
}

func newFollower(r *Receiver, key streamKey, n discovery.Target, limit *rate.Limiter) *follower {
	f := &follower{r: r, key: key, limit: limit, done: make(chan struct{}), space: make(chan struct{}, 1)}
	f.node.Store(&n)
	return f
}

func (f *follower) setNode(n discovery.Target) { f.node.Store(&n) }

// inherit resumes from where the same stream's earlier follower read to; that follower's
// undelivered lines are still delivered from it.
func (f *follower) inherit(old *follower) {
	old.mu.Lock()
	defer old.mu.Unlock()
	f.read, f.loaded = old.read, old.loaded
}

func (f *follower) stop() { f.cancel() }

func (f *follower) exited() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// run streams until ctx ends, reopening the stream after a growing pause while it fails.
func (f *follower) run(ctx context.Context) {
	defer close(f.done)
	f.mu.Lock()
	if !f.loaded {
		f.mu.Unlock()
		pos := f.r.loadPosition(ctx, f.key)
		f.mu.Lock()
		f.read, f.loaded = pos, true
	}
	f.mu.Unlock()
	wait := f.r.lc.RetryInterval
	for {
		select {
		case f.r.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		f.r.tel.open.Add(context.Background(), 1)
		got, err := f.follow(ctx)
		f.r.tel.open.Add(context.Background(), -1)
		<-f.r.slots
		if ctx.Err() != nil {
			return
		}
		f.r.tel.streamEnd(f.r.streamEndReason(err))
		if got > 0 {
			wait = f.r.lc.RetryInterval
		}
		if !sleepCtx(ctx, wait) {
			return
		}
		if got == 0 {
			wait = min(2*wait, f.r.lc.MaxRetryInterval)
		}
	}
}

// errIdle ends a stream that brought nothing for logs.idle_timeout.
var errIdle = errors.New("log stream idle for logs.idle_timeout: closed, to be reopened from its position")

// follow opens the stream at the position and reads it until it ends or stays idle past
// logs.idle_timeout; it returns the lines taken.
func (f *follower) follow(parent context.Context) (int, error) {
	f.mu.Lock()
	since := f.read.TS
	f.skip = f.read.N
	f.mu.Unlock()
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	idle := time.AfterFunc(f.r.lc.IdleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	got, err := f.readStream(ctx, since, idle)
	if err != nil && parent.Err() == nil && errors.Is(context.Cause(ctx), errIdle) {
		err = errIdle
	}
	return got, err
}

func (f *follower) readStream(ctx context.Context, since time.Time, idle *time.Timer) (int, error) {
	resp, err := f.r.transport.Get(ctx, *f.node.Load(), f.key.path(since))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body := idleReader{r: resp.Body, idle: idle, d: f.r.lc.IdleTimeout}
	br := bufio.NewReaderSize(body, 4<<10) // longer lines are read in pieces (readLine)
	got := 0
	for {
		line, cut, err := f.readLine(br)
		if err != nil {
			// A last line without its newline was cut in transit: it is read again on resume.
			return got, err
		}
		if err := f.limit.WaitN(ctx, min(len(line)+1, f.limit.Burst())); err != nil {
			return got, err
		}
		ts, body, ok := splitTimestamp(line)
		if !ok {
			f.r.tel.dropped(reasonMalformed, 1)
			continue
		}
		if f.take(ctx, ts, body, cut) {
			got++
		}
	}
}

// readLine reads one line without its newline, keeping at most max_line_size bytes of its text
// (after the timestamp) and reporting whether it cut it.
func (f *follower) readLine(br *bufio.Reader) ([]byte, bool, error) {
	limit := f.r.lc.MaxLineSize + lineOverhead - 1
	f.buf = f.buf[:0]
	cut := false
	for {
		chunk, err := br.ReadSlice('\n')
		complete := err == nil
		if complete {
			chunk = chunk[:len(chunk)-1]
		}
		if room := limit - len(f.buf); len(chunk) > room {
			chunk = chunk[:max(room, 0)]
			cut = true
		}
		f.buf = append(f.buf, chunk...)
		if complete {
			return f.buf, cut, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, false, err
		}
	}
}

// idleReader pushes the idle deadline back with every byte read.
type idleReader struct {
	r    io.Reader
	idle *time.Timer
	d    time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.idle.Reset(r.d)
	}
	return n, err
}

// splitTimestamp splits the kubelet's "<RFC3339Nano> <text>" line.
func splitTimestamp(line []byte) (time.Time, []byte, bool) {
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		return time.Time{}, nil, false
	}
	ts, err := time.Parse(time.RFC3339Nano, string(line[:i]))
	if err != nil {
		return time.Time{}, nil, false
	}
	return ts, line[i+1:], true
}

// take appends a line unless the stream delivered it before (a resume from its second repeats
// lines), waiting while pending is full. It reports whether the line was new.
func (f *follower) take(ctx context.Context, ts time.Time, body []byte, cut bool) bool {
	f.mu.Lock()
	switch {
	case ts.Before(f.read.TS):
		f.mu.Unlock()
		f.r.tel.duplicates.Add(context.Background(), 1)
		return false
	case ts.Equal(f.read.TS) && f.skip > 0:
		f.skip--
		f.mu.Unlock()
		f.r.tel.duplicates.Add(context.Background(), 1)
		return false
	case ts.Equal(f.read.TS):
		f.read.N++
	default:
		f.read = position{TS: ts, N: 1}
		f.skip = 0
	}
	if cut {
		f.r.tel.truncated.Add(context.Background(), 1)
	}
	f.pending = append(f.pending, logLine{ts: ts, body: string(body), truncated: cut, pos: f.read})
	f.bytes += int64(len(body))
	f.r.pendingBytes.Add(int64(len(body)))
	full := f.fullLocked()
	f.mu.Unlock()
	for full {
		// Room made by other streams' deliveries signals only them: look again now and then.
		select {
		case <-f.space:
		case <-time.After(pendingRecheck):
		case <-ctx.Done():
			return true
		}
		f.mu.Lock()
		full = f.fullLocked()
		f.mu.Unlock()
	}
	return true
}

// pendingRecheck is how often a stream held back by the receiver-wide byte bound looks again.
const pendingRecheck = 50 * time.Millisecond

// fullLocked tells whether the stream must stop reading: at its line or byte bound, or the
// receiver at its byte bound while this stream holds something (one that holds nothing may
// always read a line, so every stream moves).
func (f *follower) fullLocked() bool {
	lc := f.r.lc
	return len(f.pending) >= lc.MaxPendingLines || f.bytes >= lc.MaxPendingBytes ||
		(len(f.pending) > 0 && f.r.pendingBytes.Load() >= lc.MaxPendingBytesTotal)
}

func (f *follower) pendingLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// peek returns up to n pending lines; they stay pending until commit.
func (f *follower) peek(n int) []logLine {
	f.mu.Lock()
	defer f.mu.Unlock()
	n = min(n, len(f.pending))
	return f.pending[:n:n]
}

// commit removes the first n pending lines, which the pipeline accepted, and returns the
// position after them.
func (f *follower) commit(n int) position {
	f.mu.Lock()
	pos := f.pending[n-1].pos
	var freed int64
	for _, l := range f.pending[:n] {
		freed += int64(len(l.body))
	}
	f.bytes -= freed
	f.r.pendingBytes.Add(-freed)
	f.pending = append([]logLine(nil), f.pending[n:]...)
	f.mu.Unlock()
	select {
	case f.space <- struct{}{}:
	default:
	}
	return pos
}

// appendTo adds the lines as one resource's records: the pod, container, namespace, node and the
// node's mapped labels (region, site) as resource attributes, the stream on each record.
func (f *follower) appendTo(ld plog.Logs, lines []logLine, observed pcommon.Timestamp) {
	rl := ld.ResourceLogs().AppendEmpty()
	n := f.node.Load()
	attrs := rl.Resource().Attributes()
	attrs.PutStr("k8s.namespace.name", f.key.ns)
	attrs.PutStr("k8s.pod.name", f.key.pod)
	attrs.PutStr("k8s.container.name", f.key.container)
	attrs.PutStr("k8s.node.name", n.Name)
	for _, m := range f.r.p.Labels {
		if v := n.Labels[m.Key]; v != "" {
			attrs.PutStr(m.Attribute, v)
		}
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName(metadata.ScopeName)
	recs := sl.LogRecords()
	recs.EnsureCapacity(len(lines))
	iostream := ""
	switch f.key.stream {
	case streamStdout:
		iostream = "stdout"
	case streamStderr:
		iostream = "stderr"
	}
	for _, l := range lines {
		rec := recs.AppendEmpty()
		rec.SetTimestamp(pcommon.NewTimestampFromTime(l.ts))
		rec.SetObservedTimestamp(observed)
		rec.Body().SetStr(l.body)
		if iostream != "" {
			rec.Attributes().PutStr("log.iostream", iostream)
		}
		if l.truncated {
			rec.Attributes().PutBool("log.record.truncated", true)
		}
	}
}

// streamEndReason classifies why a stream ended, for the stream_ends counter.
func (r *Receiver) streamEndReason(err error) string {
	switch {
	case err == nil || errors.Is(err, io.EOF):
		return "eof"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "cut"
	case errors.Is(err, errIdle):
		return "idle_timeout"
	}
	if r.p.Classify == nil {
		return "transport"
	}
	return r.p.Classify(err)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
