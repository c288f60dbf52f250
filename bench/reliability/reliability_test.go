package reliability

import (
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/tlsutil"
)

// steady lets the collector scrape for a few intervals and returns its memory then.
func steady(t *testing.T, c *collector) harness.ProcSample {
	wait(4 * interval)
	return c.rss()
}

// sinkGotSent checks the sink got exactly what the exporter says it sent. The collector goes on
// scraping, and a batch can be buffered and sent between two reads, so the sink's count is read
// between two reads of the exporter's accounts that agree and have everything buffered sent or
// dropped: nothing was in flight or happened meanwhile.
func sinkGotSent(t *testing.T, env *harness.Env, c *collector) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		before := c.accounts()
		st := env.Sink.Stats()
		after := c.accounts()
		if before == after && after.buffered == after.sent+after.dropped {
			assert.EqualValues(t, after.sent, st.Samples, "the sink accepted %d samples, the exporter counted %v sent", st.Samples, after.sent)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exporter was never quiet for a read of the sink: %+v, then %+v", before, after)
		}
	}
}

// Remote storage answering 429, 500 and 400 at random: the 400s name no bad data (the sink's
// body is "injected error", as a proxy's would be), so all of them are retried and every sample
// is delivered.
func TestRemoteStorageErrorsAtRandom(t *testing.T) {
	env := newEnv(t, 4)
	c := startCollector(t, env, "direct", 0, nil)
	base := steady(t, c)
	env.Sink.SetErrors(map[int]float64{http.StatusTooManyRequests: 0.2, http.StatusInternalServerError: 0.2, http.StatusBadRequest: 0.05})
	wait(10 * interval)
	env.Sink.SetErrors(nil)
	a := c.drain(90 * time.Second)
	m, err := c.metrics()
	require.NoError(t, err)
	assert.Zero(t, a.dropped, "a 400 that names no bad data is retried")
	assert.Positive(t, counter(m, "requests_refused"))
	assert.Positive(t, env.Sink.Stats().Rejected)
	sinkGotSent(t, env, c)
	boundedRSS(t, base, c.rss())
}

// A remote store that takes seconds to answer: the backlog waits in the buffer, nothing is lost.
func TestSlowSink(t *testing.T) {
	env := newEnv(t, 4)
	c := startCollector(t, env, "direct", 0, nil)
	base := steady(t, c)
	env.Sink.SetDelay(3 * time.Second)
	wait(10 * interval)
	env.Sink.SetDelay(0)
	a := c.drain(90 * time.Second)
	assert.Zero(t, a.dropped)
	sinkGotSent(t, env, c)
	boundedRSS(t, base, c.rss())
}

// The buffer's disk quota (buffer.max_bytes) during an outage: the directory stays under it, the
// oldest data goes and is counted, and everything not counted is delivered afterwards.
func TestBufferQuotaDuringOutage(t *testing.T) {
	const maxBytes = 1 << 20
	env := newEnv(t, 4)
	c := startCollector(t, env, "direct", maxBytes, nil)
	base := steady(t, c)
	env.Sink.SetDown(http.StatusServiceUnavailable)
	var peak int64
	for range 30 {
		wait(interval)
		peak = max(peak, harness.DirBytes(c.params.DataDir))
	}
	t.Logf("buffer directory peak %d bytes", peak)
	env.Sink.SetDown(0)
	a := c.drain(90 * time.Second)
	m, err := c.metrics()
	require.NoError(t, err)
	// Segment files are the quota; reader.pos and LOCK are a few bytes.
	assert.LessOrEqual(t, peak, int64(maxBytes+4096), "buffer directory peaked at %d bytes", peak)
	assert.Positive(t, dropped(m, "max_bytes"), "an outage this long must overflow %d bytes", maxBytes)
	assert.Equal(t, a.dropped, dropped(m, "max_bytes"))
	sinkGotSent(t, env, c)
	boundedRSS(t, base, c.rss())
}

// A third of the fleet loses its tunnel again and again (cloudcore answers 500): the failures
// are counted per scrape, the rest of the fleet is delivered in full.
func TestThirdOfFleetFlapping(t *testing.T) {
	env := newEnv(t, 6)
	c := startCollector(t, env, "cloudcore", 0, nil)
	base := steady(t, c)
	flapping := []string{"edge-00001", "edge-00003"}
	for i := range 10 {
		if i%2 == 0 {
			env.Sim.Disconnect(flapping...)
		} else {
			env.Sim.Reconnect(flapping...)
		}
		wait(interval + interval/2)
	}
	env.Sim.Reconnect(flapping...)
	wait(2 * interval)
	a := c.drain(90 * time.Second)
	m, err := c.metrics()
	require.NoError(t, err)
	assert.Positive(t, counter(m, "kubeedge_scrape_failures"), "scrapes of disconnected nodes fail and are counted")
	assert.Zero(t, a.dropped)
	sinkGotSent(t, env, c)
	boundedRSS(t, base, c.rss())
}

// cloudcore presenting a certificate from a CA the collector does not trust: every scrape fails
// and is counted, nothing is buffered, the collector stays up with bounded memory.
func TestCloudcoreTLSFailure(t *testing.T) {
	env := newEnv(t, 4)
	other, err := tlsutil.Ensure(filepath.Join(t.TempDir(), "other"), tlsutil.Options{CommonName: "not-edgesim"})
	require.NoError(t, err)
	c := startCollector(t, env, "cloudcore", 0, func(p *peers.Params) { p.CAFile = other.CAFile })
	base := c.rss()
	wait(8 * interval)
	m, err := c.metrics()
	require.NoError(t, err)
	assert.Positive(t, counter(m, "kubeedge_scrape_failures"))
	// What still flows is the receiver's own per-target series (up = 0, scrape duration, ...): at
	// most a handful per target, never a node's samples.
	targets := 2 * len(env.Sim.Fleet().Nodes)
	assert.LessOrEqual(t, env.Sink.Stats().Series, 10*targets)
	wait(interval)
	c.drain(30 * time.Second)
	sinkGotSent(t, env, c)
	exited, _ := c.proc.Exited()
	assert.False(t, exited)
	boundedRSS(t, base, c.rss())
}

// The first cloudcore endpoint refuses connections: the collector moves on to the next, and
// every scrape is delivered.
func TestCloudcoreEndpointDown(t *testing.T) {
	env := newEnv(t, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	c := startCollector(t, env, "cloudcore", 0, func(p *peers.Params) { p.CloudcoreFirst = dead })
	wait(6 * interval)
	a := c.drain(60 * time.Second)
	assert.Zero(t, a.dropped)
	assert.Positive(t, a.sent)
	sinkGotSent(t, env, c)
}

// The collector SIGKILLed and restarted in a loop while the remote store is down: every sample
// any of its lives buffered is delivered once the store is back, or counted as dropped.
func TestRestartLoopDuringOutage(t *testing.T) {
	soak(t)
	env := newEnv(t, 4)
	c := startCollector(t, env, "direct", 0, nil)
	env.Sink.SetDown(http.StatusServiceUnavailable)
	var buffered, droppedBefore float64
	for range 5 {
		wait(4 * interval)
		a := c.accounts()
		buffered += a.buffered
		droppedBefore += a.dropped
		c.kill()
		c.start()
	}
	base := c.rss()
	env.Sink.SetDown(0)
	var got float64
	require.Eventually(t, func() bool {
		a := c.accounts()
		got = float64(env.Sink.Stats().Samples) + droppedBefore + a.dropped - a.buffered
		return got >= buffered
	}, 2*time.Minute, time.Second, "delivered+dropped %v of %v buffered before the kills", got, buffered)
	t.Logf("buffered before the kills %v; delivered+dropped %v", buffered, got)
	boundedRSS(t, base, c.rss())
}
