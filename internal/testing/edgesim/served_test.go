package edgesim

import (
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// timedSamples counts body's samples with and without a timestamp with Prometheus' parser.
func timedSamples(t *testing.T, body []byte) sampleCounts {
	p, err := textparse.New(body, "text/plain; version=0.0.4", labels.NewSymbolTable(), textparse.ParserOptions{})
	require.NoError(t, err)
	var n sampleCounts
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		require.NoError(t, err)
		if e == textparse.EntrySeries {
			if _, ts, _ := p.Series(); ts != nil {
				n.timed++
			} else {
				n.untimed++
			}
		}
	}
}

// Served counts a step's timestamped samples once however often it is fetched, untimestamped
// ones at every fetch, and nothing for a body a fault makes unstorable.
func TestServedCountsSamplesAsAScraperStoresThem(t *testing.T) {
	s := startSim(t, Config{Nodes: 2, Seed: 3, ManualStep: true})
	c := client(t, s, false)
	n := s.Fleet().Nodes[0]
	_, body := get(t, c, s, n.Address(), "/metrics/cadvisor")
	want := timedSamples(t, body)
	require.Equal(t, want, countSamples(body), "countSamples agrees with Prometheus' parser")
	require.Positive(t, want.timed)
	require.Positive(t, want.untimed)
	get(t, c, s, n.Address(), "/metrics/cadvisor") // the same step again
	s.Advance(1)
	_, next := get(t, c, s, n.Address(), "/metrics/cadvisor")
	later := timedSamples(t, next)
	s.SetMalformed(n.Name, true)
	get(t, c, s, n.Address(), "/metrics/cadvisor")
	total, byNode := s.Served()
	expect := 2*want.untimed + want.timed + later.untimed + later.timed
	assert.Equal(t, expect, total)
	assert.Equal(t, map[string]int64{n.Name: expect, s.Fleet().Nodes[1].Name: 0}, byNode)
}

// Paused, no node serves anything, directly or through the tunnel, so Served stops; ResetServed
// starts it from zero and counts a step again that was served before the reset.
func TestPauseStopsServingAndResetServedStartsOver(t *testing.T) {
	s := startSim(t, Config{Nodes: 1, Seed: 3, ManualStep: true, Direct: true, FleetFile: filepath.Join(t.TempDir(), "fleet.json")})
	c := client(t, s, false)
	n := s.Fleet().Nodes[0]
	_, body := get(t, c, s, n.Address(), "/metrics/cadvisor")
	first, _ := s.Served()
	require.Positive(t, first)

	s.Pause(true)
	code, paused := get(t, c, s, n.Address(), "/metrics/cadvisor")
	assert.Equal(t, http.StatusOK, code, "cloudcore committed to 200 before asking the edge")
	assert.Empty(t, paused)
	resp, err := http.Get("http://" + n.Direct + "/metrics/cadvisor")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	total, _ := s.Served()
	assert.Equal(t, first, total, "nothing served while paused")

	s.ResetServed()
	total, _ = s.Served()
	assert.Zero(t, total)
	s.Pause(false)
	_, again := get(t, c, s, n.Address(), "/metrics/cadvisor")
	require.Equal(t, body, again, "the same step")
	total, _ = s.Served()
	assert.Equal(t, first, total, "after a reset the step counts again")
}
