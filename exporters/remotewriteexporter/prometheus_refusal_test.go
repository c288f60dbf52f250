package remotewriteexporter

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
)

// refusingProxy stands in front of a real Prometheus as an auth proxy or ingress does: while
// status is set it answers every request with it, and it answers 413 for bodies larger than
// maxBody (when set), like a remote end whose request size limit is below ours.
type refusingProxy struct {
	status  atomic.Int64
	maxBody atomic.Int64
	refused atomic.Int64 // requests answered with status
	tooBig  atomic.Int64 // requests answered 413
	passed  atomic.Int64
	url     string
}

func newRefusingProxy(t *testing.T, target string) *refusingProxy {
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &refusingProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := int(p.status.Load()); s != 0 {
			p.refused.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			http.Error(w, http.StatusText(s), s)
			return
		}
		if limit := p.maxBody.Load(); limit > 0 && r.ContentLength > limit {
			p.tooBig.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		p.passed.Add(1)
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.url = "http://" + ln.Addr().String() + u.Path
	return p
}

// refusedBacklog is a real Prometheus behind a refusingProxy, and an exporter that has pushed
// nBatches of nSeries series to it while the proxy refused them.
type refusedBacklog struct {
	prom              *promServer
	proxy             *refusingProxy
	e                 *rwExporter
	now               time.Time
	base              int64
	nSeries, nBatches int
}

// newRefusedBacklog pushes the batches while the proxy answers status, and returns once the
// proxy has refused refusals requests.
func newRefusedBacklog(t *testing.T, status, shards, nSeries, nBatches int, refusals int64) *refusedBacklog {
	b := &refusedBacklog{prom: newPromServer(t), nSeries: nSeries, nBatches: nBatches}
	b.prom.start()
	b.proxy = newRefusingProxy(t, b.prom.writeURL())
	b.proxy.status.Store(int64(status))
	cfg := testConfig(t, b.proxy.url)
	if shards > 0 {
		cfg.Sending.Shards = shards
	}
	b.e = startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	b.now = time.Now().Truncate(time.Second)
	b.base = b.now.Add(-30 * time.Minute).UnixMilli()
	for i := range nBatches {
		require.NoError(t, b.e.push(context.Background(), gaugeBatch(nSeries, i, b.base)))
	}
	waitFor(t, 30*time.Second, "refused tries", func() bool { return b.proxy.refused.Load() >= refusals })
	return b
}

// allDelivered checks that Prometheus ends up with every pushed sample and nothing was dropped.
func (b *refusedBacklog) allDelivered(t *testing.T, timeout time.Duration) {
	q := testMetric + "[1h]"
	settle(timeout, func() bool { return countSamples(b.prom.query(q, b.now)) >= b.nSeries*b.nBatches })
	checkBatches(t, b.prom.query(q, b.now), b.nSeries, seqInts(0, b.nBatches), b.base)
	assert.Zero(t, b.e.tel.droppedTotal.Load())
}

// A credential the remote end refuses for a while (401 from an auth proxy restarting, 403 from
// a rotated token) keeps every sample: once it accepts again, all of them are in Prometheus.
func TestPrometheusRefusalKeepsEverySample(t *testing.T) {
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			b := newRefusedBacklog(t, status, 0, 25, 60, 10)
			b.proxy.status.Store(0)
			b.allDelivered(t, 60*time.Second)
			assert.GreaterOrEqual(t, b.e.tel.refusedTotal.Load(), int64(10))
		})
	}
}

// A remote end whose size limit is below max_bytes_per_send answers 413 for the merged requests
// of a backlog: the batches are split until they fit, and every sample arrives.
func TestPrometheusRequestTooLargeSplits(t *testing.T) {
	// An outage builds a backlog first.
	b := newRefusedBacklog(t, http.StatusServiceUnavailable, 2, 100, 100, 2)
	b.proxy.maxBody.Store(4 << 10)
	b.proxy.status.Store(0)
	b.allDelivered(t, 90*time.Second)
	assert.Positive(t, b.proxy.tooBig.Load(), "the backlog's requests were larger than the limit")
	t.Logf("413 answers %d, requests passed %d", b.proxy.tooBig.Load(), b.proxy.passed.Load())
}

// Prometheus answers 400 naming the samples for data outside its out-of-order window: that
// batch can never be stored and is dropped and counted, and the data after it is delivered.
func TestPrometheusBadDataDropped(t *testing.T) {
	prom := newPromServer(t)
	prom.start()
	cfg := testConfig(t, prom.writeURL())
	cfg.Sending.Shards = 1
	e := startExporter(t, cfg, componenttest.NewNopTelemetrySettings(), nil)
	now := time.Now().Truncate(time.Second)
	fresh := now.Add(-10 * time.Minute).UnixMilli()
	const nSeries = 10
	require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, 0, fresh)))
	q := testMetric + "[1h]"
	waitFor(t, 30*time.Second, "the first batch", func() bool { return countSamples(prom.query(q, now)) == nSeries })
	// Three hours old: before the head block and outside the one-hour out-of-order window.
	require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, 0, now.Add(-3*time.Hour).UnixMilli())))
	waitFor(t, 30*time.Second, "the drop", func() bool { return e.tel.droppedTotal.Load() == nSeries })
	require.NoError(t, e.push(context.Background(), gaugeBatch(nSeries, 1, fresh)))
	waitFor(t, 30*time.Second, "the batch after it", func() bool { return countSamples(prom.query(q, now)) == 2*nSeries })
	checkBatches(t, prom.query(q, now), nSeries, []int{0, 1}, fresh)
	assert.Zero(t, e.tel.refusedTotal.Load())
}
