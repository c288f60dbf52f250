package reliability

import (
	"strings"
	"testing"
	"time"

	"github.com/edgetel/edgetel/bench/harness"
	"github.com/stretchr/testify/assert"
)

// Exact accounting with the remote end up: every sample edgesim served whole, counted as the
// (series, timestamp) pairs a scraper stores, is in the sink once the collector has drained,
// with nothing inferred from intervals. 100 nodes through the cloudcore transport, 5 s, three
// minutes.
//
// A scrape that times out after edgesim wrote its whole body out (it fits in the socket's
// buffers) counts as served and is lost; on a machine this loaded (make test runs packages side
// by side on two cores) that happens. Such a scrape is failed and counted by the receiver (up is
// 0, scrape_failures{reason="timeout"}), so the test holds every node without a failed scrape to
// exactly zero loss, and every node with loss to having failed scrapes.
func TestEveryServedSampleIsDelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("three minutes of scraping")
	}
	const nodes, every, run = 100, 5 * time.Second, 3 * time.Minute
	env := newEnvEvery(t, t.TempDir(), nodes, every)
	env.Sink.Watch("up", 0)
	c := startCollector(t, env, "cloudcore", 0, nil)
	wait(run)
	disconnected := time.Now()
	var names []string
	for _, n := range env.Sim.Fleet().Nodes {
		names = append(names, n.Name)
	}
	// Disconnected nodes are served nothing more: what was served is final once the scrapes in
	// flight end.
	env.Sim.Disconnect(names...)
	wait(2 * every)
	served, servedBy := env.Sim.Served()
	c.drain(2 * time.Minute)
	delivered, deliveredBy := env.Sink.Delivered(harness.Scraped)
	failed := env.Sink.Watched()
	st := env.Sink.Stats()
	t.Logf("served %d samples, delivered %d, lost %d (%.3f%%); %d samples arrived twice (a step fetched twice)",
		served, delivered, served-delivered, 100*float64(served-delivered)/float64(served), st.Dupes)
	assert.Positive(t, served)
	lossy := 0
	for _, name := range names {
		lost := servedBy[name] - deliveredBy[name]
		fails := failedScrapes(failed, name, disconnected)
		if lost != 0 {
			lossy++
			t.Logf("%s: served %d, delivered %d, lost %d; failed scrapes %v", name, servedBy[name], deliveredBy[name], lost, fails)
		}
		if len(fails) == 0 {
			assert.Zero(t, lost, "%s: every scrape succeeded, so every sample served must be delivered", name)
		} else {
			assert.GreaterOrEqual(t, lost, int64(0), "%s: more delivered than served", name)
		}
	}
	t.Logf("%d of %d nodes lost samples, each to failed scrapes", lossy, nodes)
	if m, err := c.metrics(); err == nil {
		for k, v := range m {
			if strings.Contains(k, "kubeedge_rounds_") || strings.Contains(k, "kubeedge_scrape_failures") {
				t.Logf("%s %v", k, v)
			}
		}
	}
}

// failedScrapes lists node's failed scrapes (up == 0 in the sink) before t, by endpoint.
func failedScrapes(watched map[string][]int64, node string, before time.Time) map[string]int {
	out := map[string]int{}
	for target, stamps := range watched {
		if !strings.Contains(target, `node="`+node+`"`) {
			continue
		}
		path := target[strings.Index(target, "metrics_path="):]
		path = path[:strings.IndexByte(path, ',')]
		for _, ts := range stamps {
			if ts < before.UnixMilli() {
				out[path]++
			}
		}
	}
	return out
}
