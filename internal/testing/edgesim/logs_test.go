package edgesim

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func logSim(t *testing.T, lc LogsConfig) *Sim {
	lc.PodsPerNode = max(lc.PodsPerNode, 2)
	if lc.Rate == 0 {
		lc.Rate = 100
	}
	return startSim(t, Config{Nodes: 3, Direct: true, Logs: lc})
}

// logLines splits a containerLogs body into (timestamp, text) pairs.
func logLines(t *testing.T, body string) (stamps []time.Time, texts []string) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if l == "" {
			continue
		}
		ts, text, ok := strings.Cut(l, " ")
		require.True(t, ok, l)
		tm, err := time.Parse(time.RFC3339Nano, ts)
		require.NoError(t, err, l)
		stamps = append(stamps, tm)
		texts = append(texts, text)
	}
	return stamps, texts
}

func TestLogsNumberedLinesThroughCloudcore(t *testing.T) {
	s := logSim(t, LogsConfig{Burst: 3})
	c := client(t, s, false)
	pod := LogPodName("edge-00002", 1)
	path := "/containerLogs/edge-apps/" + pod + "/c1?timestamps=true"
	require.Eventually(t, func() bool { return s.linesBefore(time.Now()) > 20 }, 10*time.Second, 10*time.Millisecond)
	// Host is not what picks the node for logs: cloudcore looks the pod up.
	code, body := get(t, c, s, "nobody:10350", path)
	require.Equal(t, http.StatusOK, code)
	stamps, texts := logLines(t, string(body))
	require.Greater(t, len(texts), 20)
	for n, text := range texts {
		assert.Equal(t, LogLine("edge-apps", pod, "c1", int64(n)), text)
		assert.True(t, stamps[n].Equal(s.lineTime(int64(n))))
	}
	assert.True(t, stamps[0].Equal(stamps[2]), "a burst of 3 shares its timestamp")
	assert.True(t, stamps[3].After(stamps[2]))

	// sinceTime: lines at or after it, the first burst member included.
	since := stamps[6].UTC().Format(time.RFC3339Nano)
	_, body = get(t, c, s, "x", path+"&sinceTime="+since)
	_, texts = logLines(t, string(body))
	assert.Equal(t, LogLine("edge-apps", pod, "c1", 6), texts[0])

	// Without timestamps only the text.
	_, body = get(t, c, s, "x", "/containerLogs/edge-apps/"+pod+"/c0")
	assert.True(t, strings.HasPrefix(string(body), LogLine("edge-apps", pod, "c0", 0)+"\n"))
}

func TestLogsUnknownPodsAndBadOptions(t *testing.T) {
	s := logSim(t, LogsConfig{})
	c := client(t, s, false)
	for _, path := range []string{
		"/containerLogs/edge-apps/edge-00002-app-9/c0", // pod index out of range
		"/containerLogs/other/edge-00002-app-0/c0",     // wrong namespace
		"/containerLogs/edge-apps/edge-99999-app-0/c0", // no such node
		"/containerLogs/edge-apps/edge-00002-app-0/c7", // no such container
		"/containerLogs/edge-apps/edge-00002-app-01/c0",
	} {
		code, body := get(t, c, s, "edge-00002", path)
		assert.Equal(t, http.StatusInternalServerError, code, path)
		assert.Empty(t, body, path)
	}
	code, body := get(t, c, s, "x", "/containerLogs/edge-apps/edge-00002-app-0/c0?sinceTime=yesterday")
	assert.Equal(t, http.StatusOK, code, "through the tunnel the edge's status is lost")
	assert.Contains(t, string(body), "bad log options: sinceTime")

	// Directly, only the node's own pods, and the kubelet's status.
	direct := "http://" + s.Fleet().Nodes[1].Direct
	resp, err := http.Get(direct + "/containerLogs/edge-apps/edge-00001-app-0/c0")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, err = http.Get(direct + "/containerLogs/edge-apps/edge-00002-app-0/c0?follow=nope")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, err = http.Get(direct + "/containerLogs/edge-apps/edge-00002-app-0/c0?timestamps=true")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestLogsSplitStreams(t *testing.T) {
	s := logSim(t, LogsConfig{StderrEvery: 4})
	c := client(t, s, false)
	require.Eventually(t, func() bool { return s.linesBefore(time.Now()) > 12 }, 10*time.Second, 10*time.Millisecond)
	base := "/containerLogs/edge-apps/edge-00001-app-0/c0?timestamps=true&stream="
	_, body := get(t, c, s, "x", base+"Stderr")
	_, errLines := logLines(t, string(body))
	_, body = get(t, c, s, "x", base+"Stdout")
	_, outLines := logLines(t, string(body))
	_, body = get(t, c, s, "x", base+"All")
	_, all := logLines(t, string(body))
	require.GreaterOrEqual(t, len(errLines), 3)
	assert.Equal(t, LogLine("edge-apps", "edge-00001-app-0", "c0", 3), errLines[0])
	assert.Equal(t, LogLine("edge-apps", "edge-00001-app-0", "c0", 7), errLines[1])
	assert.Equal(t, LogLine("edge-apps", "edge-00001-app-0", "c0", 4), outLines[3])
	assert.GreaterOrEqual(t, len(all), len(errLines)+len(outLines)-1)
}

func TestLogsFollowAndCut(t *testing.T) {
	s := logSim(t, LogsConfig{PollInterval: 20 * time.Millisecond})
	c := client(t, s, false)
	c.Timeout = 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pod := LogPodName("edge-00003", 0)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+s.Addr()+"/containerLogs/edge-apps/"+pod+"/c0?follow=true&timestamps=true", nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	// Follow keeps delivering lines written after the request, in order.
	first := s.linesBefore(time.Now())
	var n int64
	for n = 0; n < first+30; n++ {
		require.True(t, sc.Scan(), "line %d: %v", n, sc.Err())
		assert.True(t, strings.HasSuffix(sc.Text(), fmt.Sprintf(" seq=%d", n)), sc.Text())
	}
	// Cutting the node's tunnel ends its streams.
	s.SetTunnelClosed("edge-00003", true)
	for sc.Scan() {
		n++
	}
	require.NoError(t, sc.Err())
	assert.Greater(t, s.Stats().Truncated, int64(0))
	// A new stream now gets the 200 and nothing; disconnected, a 500.
	code, body := get(t, c, s, "x", "/containerLogs/edge-apps/"+pod+"/c0")
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, body)
	s.Disconnect("edge-00003")
	code, _ = get(t, c, s, "x", "/containerLogs/edge-apps/"+pod+"/c0")
	assert.Equal(t, http.StatusInternalServerError, code)
	s.Reconnect("edge-00003")
	code, body = get(t, c, s, "x", "/containerLogs/edge-apps/"+pod+"/c0")
	assert.Equal(t, http.StatusOK, code)
	assert.NotEmpty(t, body)
}

func TestLogsConfigRejected(t *testing.T) {
	for name, lc := range map[string]LogsConfig{
		"pods":       {PodsPerNode: 21},
		"containers": {PodsPerNode: 1, ContainersPerPod: 11},
		"rate":       {PodsPerNode: 1, Rate: -1},
		"burst":      {PodsPerNode: 1, Burst: -2},
		"stderr":     {PodsPerNode: 1, StderrEvery: -1},
	} {
		_, err := New(Config{Nodes: 1, Listen: "127.0.0.1:0", TLSDir: t.TempDir(), Logs: lc})
		assert.ErrorContains(t, err, "logs:", name)
	}
}

func TestLogsFleetListsPods(t *testing.T) {
	s := logSim(t, LogsConfig{ContainersPerPod: 3})
	f := s.Fleet()
	require.Len(t, f.Nodes[0].Pods, 2)
	p := f.Nodes[0].Pods[1]
	assert.Equal(t, "edge-00001-app-1", p.Name)
	assert.Equal(t, "edge-apps", p.Namespace)
	assert.Equal(t, []string{"c0", "c1", "c2"}, p.Containers)
	assert.Equal(t, "edgesim", p.Labels[PodLabel])
}
