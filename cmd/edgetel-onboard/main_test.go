package main

import (
	"context"
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/onboard/join"
)

func TestParseControllerDefaults(t *testing.T) {
	c, err := parseController(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, join.FlavorUpstream, c.settings.Flavor)
	assert.Equal(t, "tunnel-port", c.model)
	assert.True(t, c.leaderElect)
	assert.True(t, c.tokenReview)

	c, err = parseController([]string{"-labels", "site=b1,tier=edge", "-extra-flags", "--cgroupdriver=systemd --image-repository=r.example.com",
		"-flavor", "kubesphere", "-region", "zh", "-rules-model", "edge-ip"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"site": "b1", "tier": "edge"}, c.settings.Labels)
	assert.Equal(t, []string{"--cgroupdriver=systemd", "--image-repository=r.example.com"}, c.settings.ExtraFlags)
}

func TestParseControllerRefusesBadFlags(t *testing.T) {
	for name, args := range map[string][]string{
		"model":           {"-rules-model", "both"},
		"no auth":         {"-token-review=false"},
		"hostile version": {"-kubeedge-version", "v1.23.0$(reboot)"},
		"hostile mirror":  {"-mirror", "https://x.example.com/`id`"},
		"hostile flag":    {"-extra-flags", "--x=;reboot"},
		"bad label":       {"-labels", "no-equals"},
		"half tls":        {"-tls-cert-file", "/tmp/c.pem"},
		"flavor":          {"-flavor", "ks"},
		"region":          {"-flavor", "kubesphere", "-region", "de"},
		"nothing to run":  {"-disable-join", "-disable-rules"},
		"stray argument":  {"extra"},
		"ttl":             {"-reservation-ttl", "0s"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseController(args, io.Discard)
			require.Error(t, err)
		})
	}
}

func TestParseAgent(t *testing.T) {
	c, err := parseAgent([]string{"-interval", "30s", "-iptables-mode", "legacy"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "legacy", c.mode)
	for _, args := range [][]string{{"-interval", "10ms"}, {"-iptables-mode", "nf"}, {"stray"}} {
		_, err := parseAgent(args, io.Discard)
		require.Error(t, err, "%v", args)
	}
}

func TestRunRoles(t *testing.T) {
	ctx := context.Background()
	require.Error(t, run(ctx, nil, io.Discard))
	require.ErrorContains(t, run(ctx, []string{"scheduler"}, io.Discard), `unknown role "scheduler"`)
	require.NoError(t, run(ctx, []string{"help"}, io.Discard))
	require.ErrorIs(t, run(ctx, []string{"agent", "-h"}, io.Discard), flag.ErrHelp)
	require.ErrorContains(t, run(ctx, []string{"controller", "-log-level", "loud"}, io.Discard), "-log-level")
}
