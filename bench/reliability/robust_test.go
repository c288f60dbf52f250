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
	env.Sink.SetDown(0)
	a := c.drain(3 * time.Minute)
	t.Logf("buffered %v, sent %v, dropped %v, sink rejected %d requests", a.buffered, a.sent, a.dropped, env.Sink.Stats().Rejected)
	assert.Zero(t, a.dropped, "every buffered sample is delivered")
	sinkGotSent(t, env, a)
	boundedRSS(t, base, peak)
}

// One node serves a cardinality bomb, a million series on every endpoint. The defaults
// (body_size_limit, sample_limit, node_series_limit) fail its scrapes, counted; the collector's
// memory stays bounded; and every other node of the shard is scraped every round.
func TestCardinalityBombNode(t *testing.T) {
	const nodes, endpoints = 6, 3
	// As the chart runs it: a soft memory limit (GOMEMLIMIT, 80% of the container's) lets the GC
	// reclaim the refused scrapes' garbage before the heap doubles.
	t.Setenv("GOMEMLIMIT", "256MiB")
	env := newEnv(t, nodes)
	c := startCollector(t, env, "direct", 0, nil)
	base := steady(t, c)
	bomb := env.Sim.Fleet().Nodes[0].Name
	// The baseline: good scrapes of the whole fleet in as many rounds before the bomb.
	const rounds = 12
	before := scrapeCounts(t, c)
	baseStart := time.Now()
	wait(rounds * interval)
	baseline := scrapeCounts(t, c).good - before.good
	baseRounds := int(time.Since(baseStart) / interval)
	before = scrapeCounts(t, c)
	env.Sim.SetExplosion(bomb, 1_000_000)
	t.Cleanup(func() { env.Sim.SetExplosion(bomb, 0) })
	start := time.Now()
	var peak harness.ProcSample
	for range rounds {
		wait(interval)
		if p := c.rss(); p.RSS > peak.RSS {
			peak = p
		}
	}
	after := scrapeCounts(t, c)
	if m, err := c.metrics(); err == nil {
		for k, v := range m {
			if strings.Contains(k, "kubeedge_scrape_failures") && strings.Contains(k, "{") {
				t.Logf("%s %v", k, v)
			}
		}
	}
	bombRounds := int(time.Since(start) / interval)
	good := after.good - before.good
	t.Logf("RSS steady %d MiB, peak during the bomb %d MiB", base.RSS>>20, peak.RSS>>20)
	t.Logf("good scrapes: %v in %d rounds before the bomb (every round: %d), %v of the other nodes in %d rounds during it (every round: %d); %v limit failures",
		baseline, baseRounds, nodes*endpoints*baseRounds, good, bombRounds, (nodes-1)*endpoints*bombRounds, after.limited-before.limited)
	assert.Positive(t, after.limited-before.limited, "the bomb's scrapes fail on the default limits")
	// Every round on a quiet machine; on a loaded one, no fewer than the same nodes got before.
	want := min(float64((nodes-1)*endpoints*(bombRounds-1)), baseline*(nodes-1)/nodes*0.9)
	assert.GreaterOrEqual(t, good, want, "the other nodes are scraped as often as before the bomb")
	exited, _ := c.proc.Exited()
	require.False(t, exited, "the collector survives the bomb")
	boundedRSS(t, base, peak)
	wait(interval)
	a := c.drain(2 * time.Minute)
	assert.Zero(t, a.dropped)
	sinkGotSent(t, env, a)
}

type scrapeCount struct{ good, limited float64 }

// scrapeCounts reads the receiver's scrape counters: successful scrapes, and scrapes failed by
// a limit.
func scrapeCounts(t *testing.T, c *collector) scrapeCount {
	m, err := c.metrics()
	require.NoError(t, err)
	var n scrapeCount
	for k, v := range m {
		if !strings.Contains(k, "kubeedge_scrape_failures") {
			continue
		}
		for _, r := range []string{"body_too_large", "sample_limit", "series_limit"} {
			if strings.HasSuffix(k, "{reason="+r+"}") {
				n.limited += v
			}
		}
	}
	n.good = counter(m, "kubeedge_scrapes") - counter(m, "kubeedge_scrape_failures")
	return n
}
