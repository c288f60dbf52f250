package reliability

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/edgetel/edgetel/bench/peers"
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
	assert.Zero(t, counter(m, "edgeremotewrite_samples_dropped"), "nothing dropped while the remote end refuses us")
	env.Sink.SetDown(0)
	a := c.drain(3 * time.Minute)
	t.Logf("buffered %v, sent %v, dropped %v, sink rejected %d requests", a.buffered, a.sent, a.dropped, env.Sink.Stats().Rejected)
	assert.Zero(t, a.dropped, "every buffered sample is delivered")
	sinkGotSent(t, env, c)
	boundedRSS(t, base, peak)
}

// One node serves a cardinality bomb: series that are new at every scrape, first a million on
// every endpoint (past body_size_limit), then 200,000 (under it, past sample_limit). The defaults
// fail its scrapes, counted by reason; the collector's memory stays bounded; and every other node
// of the shard is scraped every round.
func TestCardinalityBombNode(t *testing.T) {
	const nodes, endpoints = 6, 2 // the benchmark config scrapes /metrics and /metrics/cadvisor
	// As the chart runs it: a soft memory limit (GOMEMLIMIT, 80% of the container's) lets the GC
	// reclaim the refused scrapes' garbage before the heap doubles.
	t.Setenv("GOMEMLIMIT", "256MiB")
	env := newEnv(t, nodes)
	env.Sink.Watch("up", 1)
	// The whole interval for a scrape: on a machine this loaded (make test runs packages side by
	// side on two cores) a second is not always enough for a healthy node, and the question here
	// is whether the bomb delays the others, not how fast the machine is.
	c := startCollector(t, env, "direct", 0, func(p *peers.Params) { p.Timeout = interval })
	base := steady(t, c)
	bomb := env.Sim.Fleet().Nodes[0].Name
	const rounds = 8
	baseStart := time.Now()
	wait(rounds * interval)
	baseEnd := time.Now()
	t.Cleanup(func() { env.Sim.SetExplosion(bomb, 0) })
	start := time.Now()
	var peak harness.ProcSample
	// A million series is a 70 MB body that edgesim may not render within scrape_timeout on a
	// loaded machine: the scrape then fails on the timeout before the body limit, which bounds
	// the collector as well.
	for _, phase := range []struct {
		series  int
		reasons []string
	}{{1_000_000, []string{"body_too_large", "timeout"}}, {200_000, []string{"sample_limit"}}} {
		before := limitFailures(t, c)
		env.Sim.SetExplosion(bomb, phase.series)
		for range rounds {
			wait(interval)
			if p := c.rss(); p.RSS > peak.RSS {
				peak = p
			}
		}
		after := limitFailures(t, c)
		var failed float64
		for _, r := range phase.reasons {
			failed += after[r] - before[r]
		}
		t.Logf("%d new series a scrape: failures by reason %v", phase.series, after)
		assert.Positive(t, failed, "%d new series a scrape fail on %v", phase.series, phase.reasons)
	}
	end := time.Now()
	exited, _ := c.proc.Exited()
	require.False(t, exited, "the collector survives the bomb")
	boundedRSS(t, base, peak)
	t.Logf("RSS steady %d MiB, peak during the bomb %d MiB", base.RSS>>20, peak.RSS>>20)
	// The sink's up == 1 samples say which node was scraped successfully in which round; wait
	// until the last round is delivered.
	wait(2 * interval)
	watched := env.Sink.Watched()
	missed := missedRounds(watched, bomb, start.Add(interval), end)
	t.Logf("rounds missed by the other nodes' %d targets: %d before the bomb, %d during it", len(missed),
		sum(missedRounds(watched, bomb, baseStart.Add(interval), baseEnd)), sum(missed))
	assert.Len(t, missed, (nodes-1)*endpoints, "an up series for every endpoint of every other node")
	for target, n := range missed {
		assert.Zero(t, n, "%s missed rounds while %s served its bomb", target, bomb)
	}
	a := c.drain(2 * time.Minute)
	assert.Zero(t, a.dropped)
	sinkGotSent(t, env, c)
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// missedRounds counts, for each up series of a node other than skip, the scrape rounds in
// [from, to] it has no successful scrape for: a step of n intervals between consecutive samples (or the
// window's ends) is n-1 missed rounds.
func missedRounds(watched map[string][]int64, skip string, from, to time.Time) map[string]int64 {
	iv := interval.Milliseconds()
	out := map[string]int64{}
	for target, stamps := range watched {
		if strings.Contains(target, `node="`+skip+`"`) {
			continue
		}
		prev, n := from.UnixMilli(), int64(0)
		for _, ts := range append(slices.Clone(stamps), to.UnixMilli()) {
			if ts < from.UnixMilli() || ts > to.UnixMilli() {
				continue
			}
			n += max(0, (ts-prev+iv/2)/iv-1)
			prev = ts
		}
		out[target] = n
	}
	return out
}

// limitFailures reads the receiver's scrapes failed by a limit, by reason.
func limitFailures(t *testing.T, c *collector) map[string]float64 {
	m, err := c.metrics()
	require.NoError(t, err)
	out := map[string]float64{}
	for k, v := range m {
		if !strings.Contains(k, "kubeedge_scrape_failures") {
			continue
		}
		for _, r := range []string{"body_too_large", "sample_limit", "series_limit", "timeout"} {
			if strings.HasSuffix(k, "{reason="+r+"}") {
				out[r] += v
			}
		}
	}
	return out
}
