package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/cmd/query"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, query.DefaultConfig(), c)
	assert.Equal(t, "127.0.0.1:9090", c.Listen)

	c, err = parseFlags([]string{
		"--listen", "127.0.0.1:19090", "--bucket-config", "b.yaml", "--cache-dir", "/tmp/c",
		"--cache-max-bytes", "512MiB", "--sync-interval", "5s", "--query.timeout", "30s",
		"--query.max-samples", "1000", "--lookback-delta", "2m", "--query.max-concurrency", "4",
		"--api.max-results", "500", "--web.cors.origin", "https://grafana\\.example\\.com",
		"--web.bearer-token-file", "/run/token", "--web.config.file", "/run/web.yml",
		"--web.probe-listen", ":9091",
	}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:19090", c.Listen)
	assert.Equal(t, "b.yaml", c.BucketConfig)
	assert.Equal(t, int64(512<<20), c.CacheMaxBytes)
	assert.Equal(t, 5*time.Second, c.SyncInterval)
	assert.Equal(t, query.EngineOptions{Timeout: 30 * time.Second, MaxSamples: 1000, LookbackDelta: 2 * time.Minute, MaxConcurrency: 4}, c.Engine)
	assert.Equal(t, 500, c.MaxResults)
	assert.Equal(t, `https://grafana\.example\.com`, c.CORSOrigin)
	assert.Equal(t, [3]string{"/run/token", "/run/web.yml", ":9091"}, [3]string{c.BearerTokenFile, c.WebConfigFile, c.ProbeListen})

	c, err = parseFlags([]string{"--cache-max-bytes", "1048576"}, io.Discard)
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
		// Plain-text password files and bare TLS flags are gone: --web.config.file, bcrypt.
		{"--web.basic-auth-file", "/run/users"},
		{"--web.tls-cert-file", "/run/tls.crt"},
	} {
		_, err := parseFlags(args, io.Discard)
		assert.Error(t, err, "%v", args)
		assert.NotErrorIs(t, err, flag.ErrHelp)
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

// TestMain runs the command itself when the test binary is re-executed by TestHelpExitsZero.
func TestMain(m *testing.M) {
	if os.Getenv("EDGETEL_QUERY_RUN_MAIN") == "1" {
		os.Args = append([]string{"edgetel-query"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestHelpExitsZero: -h and --help print the usage on stdout and exit 0; a bad flag exits 1
// with one line on stderr.
func TestHelpExitsZero(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	runMain := func(args ...string) (int, string, string) {
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(), "EDGETEL_QUERY_RUN_MAIN=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err)
		}
		return code, stdout.String(), stderr.String()
	}
	for _, h := range []string{"-h", "--help"} {
		code, stdout, stderr := runMain(h)
		assert.Equal(t, 0, code, h)
		assert.Contains(t, stdout, "Usage: edgetel-query", h)
		assert.Contains(t, stdout, "-query.max-concurrency", h)
		assert.Empty(t, stderr, h)
	}
	code, stdout, stderr := runMain("--no-such-flag")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Equal(t, "edgetel-query: flag provided but not defined: -no-such-flag\n", stderr)
}
