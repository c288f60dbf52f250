package reliability

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/testfs"
)

// The filesystem under the buffer fills up during an outage (the quota is larger than the
// disk): the oldest buffered data makes room for the newest, counted as disk_full, the
// collector stays up, and everything not counted is delivered when the store is back.
func TestDiskFullUnderBuffer(t *testing.T) {
	env := newEnv(t, 4)
	sys := env.Dir + "/edgetelcol-direct/data"
	// Mounted before the collector starts, so its cleanup (LIFO) runs after the collector stops.
	testfs.MountTmpfs(t, sys, "1m")
	c := startCollector(t, env, "direct", 0, nil)
	require.Equal(t, sys, c.params.DataDir)
	base := steady(t, c)
	env.Sink.SetDown(http.StatusServiceUnavailable)
	var m map[string]float64
	assert.Eventually(t, func() bool {
		var err error
		m, err = c.metrics()
		return err == nil && dropped(m, "disk_full") > 0
	}, 3*time.Minute, interval, "a full disk drops the oldest data to make room, counted")
	refused := counter(m, "kubeedge_consume_errors")
	exited, _ := c.proc.Exited()
	require.False(t, exited, "the collector must survive a full disk")
	env.Sink.SetDown(0)
	a := c.drain(2 * time.Minute)
	m, err := c.metrics()
	require.NoError(t, err)
	t.Logf("refused batches %v, buffered %v, sent %v, dropped %v", refused, a.buffered, a.sent, a.dropped)
	assert.Equal(t, a.dropped, dropped(m, "disk_full"), "only the full disk dropped data")
	sinkGotSent(t, env, c)
	boundedRSS(t, base, c.rss())
}
