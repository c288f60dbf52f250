package kubeedgereceiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/scrapeconv"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/transport"
)

// ErrBodyTooLarge fails a scrape whose body exceeds body_size_limit.
var ErrBodyTooLarge = errors.New("body exceeds body_size_limit")

// Failure reasons, the value of the reason attribute of failure counters.
const (
	reasonTimeout     = "timeout"
	reasonTransport   = "transport"
	reasonDNS         = "dns"
	reasonStatus      = "http_status"
	reasonEmpty       = "empty_body"
	reasonTruncated   = "truncated_body"
	reasonTooLarge    = "body_too_large"
	reasonParse       = "parse_error"
	reasonSampleLimit = "sample_limit"
	reasonSeriesLimit = "series_limit"
	reasonLabelLimit  = "label_limit"
	reasonContentType = "content_type"
)

// target is one endpoint of a node.
type target struct {
	path     string
	labels   labels.Labels
	conv     *scrapeconv.Converter
	failures map[string]int
	last     result
	// end is the family the last good text body ended with (scrapeconv.CheckTextEnd).
	end string
	// lastBody is the size of the last body read, reserved in the body budget by the next scrape.
	lastBody int64
}

type result struct {
	up                     bool
	duration               time.Duration
	scraped, kept, dropped int
	// newest is the newest timestamp a sample carried itself (0: none), the node's clock.
	newest int64
}

// nodeLoop scrapes every endpoint of one node once per interval, at a per-node offset.
type nodeLoop struct {
	r       *kubeedgeReceiver
	name    string
	labels  labels.Labels
	targets []*target
	health  *scrapeconv.Converter
	cancel  context.CancelFunc
	stale   atomic.Bool

	mu   sync.Mutex
	node discovery.Target

	connected, known bool
	disconnects      int
	lastGood         time.Time
	started          time.Time
	text             []byte
	// Where the last round's time went, for the reason of a round it made late or missed.
	roundTime, slotWait, consumeTime time.Duration
	// offset is the node's last measured clock offset, in seconds (offsetKnown: once measured).
	offset      float64
	offsetKnown bool
}

func newNodeLoop(r *kubeedgeReceiver, n discovery.Target) *nodeLoop {
	l := &nodeLoop{r: r, name: n.Name, node: n, labels: r.targetLabels(n)}
	for _, p := range r.paths {
		b := labels.NewBuilder(l.labels)
		b.Set("metrics_path", p)
		tl := b.Labels()
		l.targets = append(l.targets, &target{
			path:     p,
			labels:   tl,
			failures: map[string]int{},
			conv: scrapeconv.New(scrapeconv.Options{
				HonorTimestamps: r.cfg.HonorTimestamps,
				HonorLabels:     r.cfg.HonorLabels,
				SampleLimit:     r.cfg.SampleLimit,
				LabelLimits: scrapeconv.LabelLimits{Labels: r.cfg.LabelLimit,
					NameLength: r.cfg.LabelNameLengthLimit, ValueLength: r.cfg.LabelValueLengthLimit},
				MaxFutureSkew: r.cfg.MaxFutureSkew,
				Relabel:       r.relabel,
				TargetLabels:  tl,
			}),
		})
	}
	l.health = scrapeconv.New(scrapeconv.Options{TargetLabels: l.labels})
	return l
}

// targetLabels are the labels every series of a node gets: job, instance (the node name, unique
// and stable whatever the transport), node, and the mapped node labels.
func (r *kubeedgeReceiver) targetLabels(n discovery.Target) labels.Labels {
	b := labels.NewScratchBuilder(3 + len(r.labels))
	b.Add("job", r.cfg.Job)
	b.Add("instance", n.Name)
	b.Add("node", n.Name)
	for _, m := range r.labels {
		if v := n.Labels[m.Key]; v != "" {
			b.Add(m.Attribute, v)
		}
	}
	b.Sort()
	return b.Labels()
}

func (l *nodeLoop) sameSeries(n discovery.Target) bool {
	return labels.Equal(l.labels, l.r.targetLabels(n))
}

func (l *nodeLoop) update(n discovery.Target) {
	l.mu.Lock()
	l.node = n
	l.mu.Unlock()
}

func (l *nodeLoop) current() discovery.Target {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.node
}

// stop ends the loop; with stale, its series get staleness markers.
func (l *nodeLoop) stop(stale bool) {
	l.stale.Store(stale)
	l.cancel()
}

// offset spreads nodes over the interval, the same for a node on every replica and restart.
func offset(name string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return time.Duration(h.Sum64() % uint64(interval))
}

func (l *nodeLoop) run(ctx context.Context) {
	l.started = time.Now()
	defer func() {
		if l.stale.Load() {
			l.end()
		}
	}()
	interval := l.r.cfg.CollectionInterval
	wait := time.NewTimer(offset(l.name, interval))
	defer wait.Stop()
	// Rounds are due on a fixed grid from the node's offset. A round that runs past the next
	// one's time makes it late, or skips whole rounds; neither happens silently (roundsLate,
	// roundsMissed).
	var due time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
		}
		if due.IsZero() {
			due = time.Now()
		}
		l.scrape(ctx)
		due = l.nextDue(due, interval)
		wait.Reset(time.Until(due))
	}
}

// nextDue returns the time of the round after the one due at due, counting the rounds the last
// one made late or skipped.
func (l *nodeLoop) nextDue(due time.Time, interval time.Duration) time.Time {
	due = due.Add(interval)
	behind := time.Since(due)
	if behind <= 0 {
		return due
	}
	reason := l.overrunReason()
	if missed := int64(behind / interval); missed > 0 {
		l.r.tel.roundsMissed.Add(context.Background(), missed, reason)
		due = due.Add(time.Duration(missed) * interval)
	}
	l.r.tel.roundsLate.Add(context.Background(), 1, reason)
	return due
}

// overrunReason names what took most of a round that ran past its interval: waiting for a slot
// of max_concurrent_scrapes, the next consumer taking the batch (back pressure), or the
// endpoints' own answers (slow or timing out).
func (l *nodeLoop) overrunReason() metric.AddOption {
	rest := l.roundTime - l.slotWait - l.consumeTime
	switch {
	case l.slotWait >= l.consumeTime && l.slotWait >= rest:
		return reasonConcurrencyLimit
	case l.consumeTime >= rest:
		return reasonPipeline
	default:
		return reasonSlowEndpoints
	}
}

// batch is one round's data of a node: a resource per endpoint and one for the node's health
// series, each carrying its target labels once (job and instance as service.name and
// service.instance.id, node, metrics_path and the mapped node labels under their label names)
// and the node's name as k8s.node.name. The data points carry only the scraped labels.
type batch struct {
	md      pmetric.Metrics
	node    string
	version string
}

func (l *nodeLoop) newBatch() *batch {
	return &batch{md: pmetric.NewMetrics(), node: l.name, version: l.r.set.BuildInfo.Version}
}

// into starts the resource of the series with these target labels and returns where they go.
func (b *batch) into(targetLabels labels.Labels) pmetric.MetricSlice {
	rm := b.md.ResourceMetrics().AppendEmpty()
	attrs := rm.Resource().Attributes()
	attrs.EnsureCapacity(targetLabels.Len() + 1)
	scrapeconv.ResourceAttributes(targetLabels, attrs)
	attrs.PutStr(nodeNameAttribute, b.node)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metadata.ScopeName)
	sm.Scope().SetVersion(b.version)
	return sm.Metrics()
}

// nodeNameAttribute is the semantic-convention resource attribute of the node's name, which the
// edgenode processor finds nodes by.
const nodeNameAttribute = "k8s.node.name"

// done drops the resources left empty (an endpoint that failed) and returns the data.
func (b *batch) done() pmetric.Metrics {
	b.md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		return rm.ScopeMetrics().At(0).Metrics().Len() == 0
	})
	return b.md
}

// scrape scrapes every endpoint, then sends their data and the node's health in one batch.
func (l *nodeLoop) scrape(ctx context.Context) {
	now := time.Now()
	l.slotWait, l.consumeTime = 0, 0
	ms := now.UnixMilli()
	out := l.newBatch()
	anyUp := false
	budget := l.r.cfg.NodeSeriesLimit
	for _, t := range l.targets {
		t.last = l.scrapeTarget(ctx, t, ms, out.into(t.labels), budget)
		if t.last.up {
			budget -= t.last.scraped
		}
		if ctx.Err() != nil {
			return
		}
		anyUp = anyUp || t.last.up
	}
	node := l.current()
	l.r.reportHealth(node, anyUp)
	connected := node.IsReady() && anyUp
	if l.known && l.connected && !connected {
		l.disconnects++
	}
	l.known, l.connected = true, connected
	if anyUp {
		l.lastGood = now
	}
	l.text = l.healthText(l.text[:0], node, now)
	if _, err := l.health.Convert(l.text, scrapeconv.MediaText, ms, out.into(l.labels)); err != nil {
		l.r.set.Logger.Error("kubeedge health series", zap.Error(err))
	}
	start := time.Now()
	l.consume(ctx, out.done())
	l.consumeTime = time.Since(start)
	l.roundTime = time.Since(now)
}

func (l *nodeLoop) consume(ctx context.Context, md pmetric.Metrics) {
	if err := l.r.next.ConsumeMetrics(ctx, md); err != nil {
		l.r.tel.refused.Add(context.Background(), 1)
		l.r.refusals.report(l.name, md.DataPointCount(), err)
	}
}

// refusalLog reports batches the next consumer refused (a full disk under the remote-write
// buffer, an exporter that is down): the data is lost, so it is a warning, but a fleet's worth
// of nodes refused every round would flood the log, so it is logged at most once per period
// with the number of batches refused since.
type refusalLog struct {
	log     *zap.Logger
	every   time.Duration
	mu      sync.Mutex
	last    time.Time
	batches int // refused since the last log line, this one included
	points  int
}

const refusalLogEvery = 10 * time.Second

func (r *refusalLog) report(node string, points int, err error) {
	r.mu.Lock()
	now := time.Now()
	r.batches++
	r.points += points
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.mu.Unlock()
		return
	}
	batches, lost := r.batches, r.points
	r.last, r.batches, r.points = now, 0, 0
	r.mu.Unlock()
	r.log.Warn("kubeedge: the next consumer refused scraped data; it is lost",
		zap.String("node", node), zap.Int("batches", batches), zap.Int("data_points", lost), zap.Error(err))
}

// end sends staleness markers for every series of the node, which went away.
func (l *nodeLoop) end() {
	out := l.newBatch()
	ms := time.Now().UnixMilli()
	n := 0
	for _, t := range l.targets {
		n += t.conv.Stale(ms, out.into(t.labels))
	}
	n += l.health.Stale(ms, out.into(l.labels))
	if n == 0 {
		return
	}
	l.r.tel.scrape(true, 0, 0, n)
	ctx, cancel := context.WithTimeout(context.Background(), l.r.cfg.ScrapeTimeout)
	defer cancel()
	l.consume(ctx, out.done())
}

// scrapeTarget scrapes one endpoint; budget is what is left of the node's series limit this
// round (unlimited when the limit is 0).
func (l *nodeLoop) scrapeTarget(ctx context.Context, t *target, scrapeMs int64, dest pmetric.MetricSlice, budget int) result {
	if l.r.cfg.NodeSeriesLimit > 0 && budget <= 0 {
		return l.failed(t, result{}, scrapeconv.Stats{},
			fmt.Errorf("%w: the node's other endpoints used all of node_series_limit %d", scrapeconv.ErrSeriesLimit, l.r.cfg.NodeSeriesLimit))
	}
	t.conv.SetSeriesLimit(max(budget, 0))
	start := time.Now()
	// Bodies are pooled across nodes rather than kept per node: a cadvisor body is 1-2 MB, and
	// only the scrapes in progress need one.
	buf := l.r.bodies.Get().(*bytes.Buffer)
	defer l.putBody(buf)
	st, err := l.fetchAndConvert(ctx, t, scrapeMs, dest, buf)
	res := result{duration: time.Since(start), scraped: st.Scraped}
	if ctx.Err() != nil {
		return res
	}
	if err != nil {
		return l.failed(t, res, st, err)
	}
	res.up = true
	res.kept = st.PostRelabel
	res.dropped = st.Scraped - st.PostRelabel
	res.newest = st.NewestTimestamp
	l.r.tel.scrape(true, res.kept, res.dropped-st.ClockSkew, st.Stale)
	l.r.tel.clockSkew(st.ClockSkew)
	return res
}

// maxPooledBody is the largest body buffer kept for reuse: one node serving a huge body (a
// cardinality bomb) must not leave buffers of that size behind for every scrape slot.
const maxPooledBody = 8 << 20

func (l *nodeLoop) putBody(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBody {
		l.r.bodies.Put(buf)
	}
}

func (l *nodeLoop) failed(t *target, res result, st scrapeconv.Stats, err error) result {
	reason := classify(err)
	t.failures[reason]++
	res.dropped = st.Scraped
	res.scraped = 0
	l.r.tel.failure(reason)
	l.r.tel.scrape(false, 0, res.dropped, 0)
	l.r.set.Logger.Debug("kubeedge scrape failed", zap.String("node", l.name),
		zap.String("path", t.path), zap.String("reason", reason), zap.Error(err))
	return res
}

// fetch GETs path within scrape_timeout and one slot of max_concurrent_scrapes, and reads the
// body into buf.
// fetchAndConvert reserves the body's bytes in the body budget, fetches in a slot of
// max_concurrent_scrapes and converts in a slot of the
// conversions, taken before the fetch slot is given back. Converting is CPU-bound: when a round
// needs more CPU than there is (at start-up every series is new and goes through the full
// parser), bodies waiting for it hold fetch slots, so that at most max_concurrent_scrapes bodies
// and GOMAXPROCS half-built conversions are in memory, not one of each per node, and at most
// max_body_bytes_in_flight of bodies (bodyBudget).
func (l *nodeLoop) fetchAndConvert(ctx context.Context, t *target, scrapeMs int64, dest pmetric.MetricSlice, buf *bytes.Buffer) (scrapeconv.Stats, error) {
	start := time.Now()
	hold, err := l.r.budget.reserve(ctx, t.lastBody)
	if err != nil {
		return scrapeconv.Stats{}, err
	}
	l.slotWait += time.Since(start)
	defer hold.release()
	releaseFetch, err := l.take(ctx, l.r.sem)
	if err != nil {
		return scrapeconv.Stats{}, err
	}
	body, contentType, err := l.fetch(ctx, t.path, buf)
	var mt, end string
	if err == nil {
		hold.read(len(body))
		t.lastBody = int64(len(body))
		mt, err = scrapeconv.MediaType(body, contentType)
	}
	if err == nil && mt == scrapeconv.MediaText {
		end, err = scrapeconv.CheckTextEnd(body, t.end)
	}
	if err != nil {
		releaseFetch()
		return scrapeconv.Stats{}, err
	}
	releaseConvert, err := l.take(ctx, l.r.converting)
	releaseFetch()
	if err != nil {
		return scrapeconv.Stats{}, err
	}
	defer releaseConvert()
	st, err := t.conv.Convert(body, mt, scrapeMs, dest)
	if err == nil && end != "" {
		t.end = end
	}
	return st, err
}

// take waits for a slot of slots, counting the wait as the round's slot wait.
func (l *nodeLoop) take(ctx context.Context, slots chan struct{}) (release func(), err error) {
	start := time.Now()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.slotWait += time.Since(start)
	return func() { <-slots }, nil
}

func (l *nodeLoop) fetch(ctx context.Context, path string, buf *bytes.Buffer) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, l.r.cfg.ScrapeTimeout)
	defer cancel()
	resp, err := l.r.transport.Get(ctx, l.current(), path)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := l.read(resp, buf)
	return body, resp.Header.Get("Content-Type"), err
}

func (l *nodeLoop) read(resp *http.Response, buf *bytes.Buffer) ([]byte, error) {
	limit := l.r.cfg.BodySizeLimit
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if n > limit {
		return nil, fmt.Errorf("%w of %d bytes", ErrBodyTooLarge, limit)
	}
	return buf.Bytes(), nil
}

func classify(err error) string {
	var se *transport.StatusError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return reasonTimeout
	case errors.As(err, &dnsErr):
		// Told apart from other transport failures: a cloudcore name that stops resolving is a
		// cluster DNS problem, not an edge one.
		return reasonDNS
	case errors.As(err, &se):
		return reasonStatus
	case errors.Is(err, ErrBodyTooLarge):
		return reasonTooLarge
	case errors.Is(err, scrapeconv.ErrEmptyBody), errors.Is(err, transport.ErrStaleSession):
		return reasonEmpty
	case errors.Is(err, scrapeconv.ErrTruncated), errors.Is(err, scrapeconv.ErrMissingEOF), errors.Is(err, scrapeconv.ErrCut):
		return reasonTruncated
	case errors.Is(err, scrapeconv.ErrSampleLimit):
		return reasonSampleLimit
	case errors.Is(err, scrapeconv.ErrSeriesLimit):
		return reasonSeriesLimit
	case errors.Is(err, scrapeconv.ErrLabelLimit):
		return reasonLabelLimit
	case errors.Is(err, scrapeconv.ErrParse):
		return reasonParse
	case errors.Is(err, scrapeconv.ErrUnsupported):
		return reasonContentType
	}
	return reasonTransport
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// healthText renders the node's health as an exposition, so it goes through the same conversion
// and staleness handling as scraped data: the synthetic series Prometheus adds per target (up,
// scrape_duration_seconds, ...) plus per-node connectivity.
func (l *nodeLoop) healthText(b []byte, node discovery.Target, now time.Time) []byte {
	perTarget := func(name, typ string, v func(*target) float64) {
		b = append(b, "# TYPE "+name+" "+typ+"\n"...)
		for _, t := range l.targets {
			b = append(b, name...)
			b = append(b, `{metrics_path="`...)
			b = append(b, labelEscaper.Replace(t.path)...)
			b = append(b, `"} `...)
			b = strconv.AppendFloat(b, v(t), 'g', -1, 64)
			b = append(b, '\n')
		}
	}
	perNode := func(name, typ string, v float64) {
		b = append(b, "# TYPE "+name+" "+typ+"\n"+name+" "...)
		b = strconv.AppendFloat(b, v, 'g', -1, 64)
		b = append(b, '\n')
	}
	perTarget("up", "gauge", func(t *target) float64 { return boolValue(t.last.up) })
	perTarget("scrape_duration_seconds", "gauge", func(t *target) float64 { return t.last.duration.Seconds() })
	perTarget("scrape_samples_scraped", "gauge", func(t *target) float64 { return float64(t.last.scraped) })
	perTarget("scrape_samples_post_metric_relabeling", "gauge", func(t *target) float64 { return float64(t.last.kept) })
	perTarget("kubeedge_scrape_samples_dropped", "gauge", func(t *target) float64 { return float64(t.last.dropped) })
	b = append(b, "# TYPE kubeedge_scrape_failures_total counter\n"...)
	for _, t := range l.targets {
		reasons := make([]string, 0, len(t.failures))
		for r := range t.failures {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			b = append(b, `kubeedge_scrape_failures_total{metrics_path="`...)
			b = append(b, labelEscaper.Replace(t.path)...)
			b = append(b, `",reason="`+r+`"} `...)
			b = strconv.AppendInt(b, int64(t.failures[r]), 10)
			b = append(b, '\n')
		}
	}
	perNode("kubeedge_node_ready", "gauge", boolValue(node.IsReady()))
	perNode("kubeedge_node_connected", "gauge", boolValue(l.connected))
	since := l.started
	if !l.lastGood.IsZero() {
		since = l.lastGood
	}
	perNode("kubeedge_node_seconds_since_last_good_scrape", "gauge", now.Sub(since).Seconds())
	perNode("kubeedge_node_disconnects_total", "counter", float64(l.disconnects))
	if offset, ok := l.clockOffset(now); ok {
		l.offset, l.offsetKnown = offset, true
	}
	// The last measure holds while the node is unreachable, as its other series do.
	if l.offsetKnown {
		perNode("kubeedge_node_clock_offset_seconds", "gauge", l.offset)
	}
	return b
}

// clockOffset is how far the node's clock is ahead of this host's (negative: behind), as the
// newest timestamp its samples carried themselves this round against the scrape time. The
// kubelet stamps its cAdvisor and resource samples with the time of its last stats collection
// (seconds behind), so the offset reads a little low. Not the Date header: cloudcore relays
// only the body, so through it the header is cloudcore's clock, not the edge's.
func (l *nodeLoop) clockOffset(scrape time.Time) (float64, bool) {
	var newest int64
	for _, t := range l.targets {
		if t.last.up {
			newest = max(newest, t.last.newest)
		}
	}
	if newest == 0 {
		return 0, false
	}
	return float64(newest-scrape.UnixMilli()) / 1000, true
}

func boolValue(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
