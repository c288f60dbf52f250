package main

import (
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
