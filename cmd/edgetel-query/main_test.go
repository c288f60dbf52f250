package main

import (
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/query"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil)
	require.NoError(t, err)
	assert.Equal(t, query.DefaultConfig(), c)
	assert.Equal(t, "127.0.0.1:9090", c.Listen)

	c, err = parseFlags([]string{
		"--listen", "127.0.0.1:19090", "--bucket-config", "b.yaml", "--cache-dir", "/tmp/c",
		"--cache-max-bytes", "512MiB", "--sync-interval", "5s", "--query.timeout", "30s",
		"--query.max-samples", "1000", "--lookback-delta", "2m",
	})
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:19090", c.Listen)
	assert.Equal(t, "b.yaml", c.BucketConfig)
	assert.Equal(t, int64(512<<20), c.CacheMaxBytes)
	assert.Equal(t, 5*time.Second, c.SyncInterval)
	assert.Equal(t, query.EngineOptions{Timeout: 30 * time.Second, MaxSamples: 1000, LookbackDelta: 2 * time.Minute}, c.Engine)

	c, err = parseFlags([]string{"--cache-max-bytes", "1048576"})
	require.NoError(t, err)
	assert.Equal(t, int64(1<<20), c.CacheMaxBytes)
}

func TestParseFlagsRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--cache-max-bytes", "lots"},
		{"--sync-interval", "often"},
		{"--query.max-samples", "1e3x"},
		{"--no-such-flag"},
		{"extra"},
	} {
		_, err := parseFlags(args)
		assert.Error(t, err, "%v", args)
	}
}

// TestStopsOnSignal runs the command in-process and stops it with SIGTERM, then SIGINT.
func TestStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		done := make(chan error, 1)
		go func() {
			done <- run([]string{"--listen", addr, "--bucket-dir", t.TempDir(), "--cache-dir", t.TempDir(), "--sync-interval", "100ms"})
		}()
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://" + addr + "/api/v1/status/buildinfo")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 10*time.Second, 20*time.Millisecond)
		// The handler is registered before the listener opens, so the signal cannot kill the test.
		require.NoError(t, syscall.Kill(os.Getpid(), sig))
		select {
		case err := <-done:
			require.NoError(t, err, sig)
		case <-time.After(10 * time.Second):
			t.Fatalf("no stop on %s", sig)
		}
	}
}
