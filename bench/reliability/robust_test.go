package reliability

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/bench/harness"
)

// After an outage the remote end comes back refusing us with 403 for a minute (an auth proxy
// restarting, a credential rotated late), then accepts: every sample buffered through the
// outage and the refusal is delivered, none is dropped, and the refusal is visible in the
// collector's metrics.
func TestForbiddenAfterOutageLosesNothing(t *testing.T) {
	env := newEnv(t, 4)
	c := startCollector(t, env, "direct", 0, nil)
	base := steady(t, c)
	first := time.Now().UnixMilli()
	env.Sink.SetDown(http.StatusServiceUnavailable)
	wait(5 * interval)
	env.Sink.SetDown(http.StatusForbidden)
	refusing := time.Now()
	m, err := c.metrics()
	require.NoError(t, err)
	refusedBefore := counter(m, "requests_refused")
	var peak harness.ProcSample
	for time.Since(refusing) < 60*time.Second {
		wait(interval)
		if p := c.rss(); p.RSS > peak.RSS {
			peak = p
		}
	}
	m, err = c.metrics()
	require.NoError(t, err)
	assert.Greater(t, counter(m, "requests_refused"), refusedBefore, "the 403s are counted as refusals")
	assert.Zero(t, counter(m, "samples_dropped"), "nothing dropped while the remote end refuses us")
	last := time.Now().UnixMilli()
	env.Sink.SetDown(0)
	a := c.drain(3 * time.Minute)
	t.Logf("buffered %v, sent %v, dropped %v, sink rejected %d requests", a.buffered, a.sent, a.dropped, env.Sink.Stats().Rejected)
	assert.Zero(t, a.dropped, "every buffered sample is delivered")
	sinkGotSent(t, env, a)
	assert.Zero(t, env.Sink.Gaps(first, last), "no scrape of the outage and the refusal is missing")
	boundedRSS(t, base, peak)
}

// One node serves a cardinality bomb, a million series on every endpoint. The node's limits
// (node_series_limit, sample_limit by default) fail its scrapes, counted; the collector's memory
// stays bounded; and every other node of the shard is scraped every round.
func TestCardinalityBombNode(t *testing.T) {
	env := newEnv(t, 6)
	c := startCollector(t, env, "direct", 0, nil)
	base := steady(t, c)
	bomb := env.Sim.Fleet().Nodes[0].Name
	env.Sim.SetExplosion(bomb, 1_000_000)
	t.Cleanup(func() { env.Sim.SetExplosion(bomb, 0) })
	first := time.Now().UnixMilli()
	var peak harness.ProcSample
	for range 12 {
		wait(interval)
		if p := c.rss(); p.RSS > peak.RSS {
			peak = p
		}
	}
	last := time.Now().UnixMilli()
	t.Logf("RSS steady %d MiB, peak during the bomb %d MiB", base.RSS>>20, peak.RSS>>20)
	m, err := c.metrics()
	require.NoError(t, err)
	failures := 0.0
	for k, v := range m {
		if strings.Contains(k, "kubeedge_scrape_failures") &&
			(strings.HasSuffix(k, "{reason=sample_limit}") || strings.HasSuffix(k, "{reason=series_limit}")) {
			failures += v
		}
	}
	assert.Positive(t, failures, "the bomb's scrapes fail on the default limits")
	exited, _ := c.proc.Exited()
	require.False(t, exited, "the collector survives the bomb")
	boundedRSS(t, base, peak)
	wait(interval)
	a := c.drain(2 * time.Minute)
	assert.Zero(t, a.dropped)
	sinkGotSent(t, env, a)
	assert.Positive(t, env.Sink.Covered(first, last))
	assert.Zero(t, env.Sink.Gaps(first, last), "every other node (and the bomb's own health series) scraped every round")
}
