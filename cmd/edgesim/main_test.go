package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, args ...string) (*edgesim.Sim, *syncBuffer, chan error) {
	dir := t.TempDir()
	base := []string{"--tls-dir", filepath.Join(dir, "tls"), "--fleet-file", filepath.Join(dir, "fleet.json")}
	return startArgs(t, append(base, args...)...)
}

// startArgs runs edgesim on free loopback ports with args and no other flag.
func startArgs(t *testing.T, args ...string) (*edgesim.Sim, *syncBuffer, chan error) {
	base := []string{"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}
	logs := &syncBuffer{}
	ready := make(chan *edgesim.Sim, 1)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { done <- run(ctx, append(base, args...), logs, ready) }()
	select {
	case s := <-ready:
		return s, logs, done
	case err := <-done:
		t.Fatalf("edgesim exited: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatal("edgesim did not start")
	}
	return nil, nil, nil
}

func TestRunServesAndStopsOnSIGTERM(t *testing.T) {
	s, logs, done := start(t, "--nodes", "1000", "--seed", "9", "--require-client-cert", "--direct",
		"--disconnect", "edge-00002", "--malformed", "edge-00003", "--explode", "edge-00004", "--explode-series", "7",
		"--kubelet-port", "10351", "--tunnel-closed", "edge-00005", "--log-stats", "50ms")
	f := s.Fleet()
	require.Len(t, f.Nodes, 1000)
	saved, err := fleet.Load(filepathOf(t, logs))
	require.NoError(t, err)
	assert.Equal(t, f, saved)
	assert.Equal(t, 10351, f.Nodes[0].Port)

	cfg, err := s.TLSFiles().ClientConfig(true)
	require.NoError(t, err)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	getStatus := func(host, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+s.Addr()+path, nil)
		req.Host = host
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := getStatus(f.Nodes[0].Address(), "/metrics/cadvisor")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "container_cpu_usage_seconds_total")
	code, body = getStatus(f.Nodes[1].Address(), "/metrics")
	assert.Equal(t, http.StatusInternalServerError, code, "--disconnect")
	assert.Empty(t, body)
	_, body = getStatus(f.Nodes[2].Address(), "/metrics")
	assert.Contains(t, body, "edgesim_malformed{")
	_, body = getStatus(f.Nodes[3].Address(), "/metrics")
	assert.Equal(t, 7, strings.Count(body, "edgesim_exploded_series{"))

	code, body = getStatus(f.Nodes[4].Address(), "/metrics")
	assert.Equal(t, http.StatusOK, code, "--tunnel-closed")
	assert.Empty(t, body)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "msg=served") }, 5*time.Second, 20*time.Millisecond)

	resp, err := http.Get("http://" + s.AdminAddr() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = http.Get("http://" + f.Nodes[5].Direct + "/metrics/resource")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("edgesim did not stop on SIGTERM")
	}
	assert.Contains(t, logs.String(), "edgesim serving")
	assert.Contains(t, logs.String(), "stopping")
	_, err = c.Get("https://" + s.Addr() + "/metrics")
	assert.Error(t, err, "listener closed")
}

// filepathOf finds the fleet file path in the startup log.
func filepathOf(t *testing.T, logs *syncBuffer) string {
	for _, f := range strings.Fields(logs.String()) {
		if v, ok := strings.CutPrefix(f, "fleet_file="); ok {
			return v
		}
	}
	t.Fatalf("no fleet_file in log:\n%s", logs)
	return ""
}

func TestFlagErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"missing captures":  {"--tls-dir", t.TempDir(), "--captures", "/nonexistent"},
		"bad nodes":         {"--tls-dir", t.TempDir(), "--nodes", "0"},
		"bad fraction":      {"--tls-dir", t.TempDir(), "--disconnect-fraction", "1.5"},
		"bad error rate":    {"--tls-dir", t.TempDir(), "--error-rate", "-1"},
		"unknown node":      {"--tls-dir", t.TempDir(), "--nodes", "3", "--malformed", "edge-00004", "--listen", "127.0.0.1:0", "--admin-listen", ""},
		"unknown flag":      {"--tls-dir", t.TempDir(), "--bogus"},
		"stray argument":    {"--tls-dir", t.TempDir(), "extra"},
		"bad log level":     {"--tls-dir", t.TempDir(), "--log-level", "loud"},
		"public admin addr": {"--tls-dir", t.TempDir(), "--admin-listen", "0.0.0.0:0", "--listen", "127.0.0.1:0"},
	} {
		err := run(context.Background(), args, io.Discard, nil)
		assert.Error(t, err, name)
	}
}

// -h prints the usage (every flag) and is a clean exit, not an error.
func TestHelpExitsZero(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &out, nil)
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, out.String(), "-captures")
	assert.Contains(t, out.String(), "-nodes")
	assert.Equal(t, 0, exitCode(err, io.Discard))
	assert.Equal(t, 1, exitCode(errors.New("boom"), io.Discard))
}

// Without --captures or --tls-dir edgesim serves the embedded captures from any working
// directory, its TLS files in the user's cache directory.
func TestNoFlagsServesEmbeddedCaptures(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("EDGETEL_FIXTURES", "")
	t.Chdir("/")
	s, _, _ := startArgs(t, "--nodes", "2")
	assert.FileExists(t, filepath.Join(cache, "edgesim", "tls", "ca.crt"))
	cfg, err := s.TLSFiles().ClientConfig(false)
	require.NoError(t, err)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	req, err := http.NewRequest(http.MethodGet, "https://"+s.Addr()+"/metrics/cadvisor", nil)
	require.NoError(t, err)
	req.Host = s.Fleet().Nodes[1].Address()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "container_cpu_usage_seconds_total")
}
