package main

import (
	"context"
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/cmd/onboard/join"
)

// required are the flags the join API cannot run without: who may join, the audience, TLS.
var required = []string{"-allowed-groups", "edge-admins", "-token-review-audiences", "edgetel-onboard",
	"-tls-cert-file", "/etc/tls/tls.crt", "-tls-key-file", "/etc/tls/tls.key"}

func with(args ...string) []string { return append(append([]string(nil), required...), args...) }

func TestParseControllerDefaults(t *testing.T) {
	c, err := parseController(required, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, join.FlavorUpstream, c.settings.Flavor)
	assert.Equal(t, "tunnel-port", c.model)
	assert.True(t, c.leaderElect)
	assert.True(t, c.tokenReview)

	c, err = parseController(with("-labels", "site=b1,tier=edge", "-extra-flags", "--cgroupdriver=systemd --image-repository=r.example.com",
		"-flavor", "kubesphere", "-region", "zh", "-rules-model", "edge-ip"), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"site": "b1", "tier": "edge"}, c.settings.Labels)
	assert.Equal(t, []string{"--cgroupdriver=systemd", "--image-repository=r.example.com"}, c.settings.ExtraFlags)
}

// TestAgentMetricsOnLoopbackByDefault: the agent runs with the host's network, so outside the
// chart its metrics must not listen on the node's public addresses unless asked.
func TestAgentMetricsOnLoopbackByDefault(t *testing.T) {
	a, err := parseAgent(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9108", a.metricsListen)
	c, err := parseController(required, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, ":8080", c.metricsListen, "the controller's pod network is fenced by its NetworkPolicy")
}

func TestParseControllerRefusesBadFlags(t *testing.T) {
	for name, args := range map[string][]string{
		"model":           {"-rules-model", "both"},
		"no auth":         {"-token-review=false"},
		"hostile version": {"-kubeedge-version", "v1.23.0$(reboot)"},
		"hostile mirror":  {"-mirror", "https://x.example.com/`id`"},
		"hostile flag":    {"-extra-flags", "--x=;reboot"},
		"bad label":       {"-labels", "no-equals"},
		"half tls":        {"-tls-key-file", ""},
		"flavor":          {"-flavor", "ks"},
		"region":          {"-flavor", "kubesphere", "-region", "de"},
		"nothing to run":  {"-disable-join", "-disable-rules"},
		"stray argument":  {"extra"},
		"ttl":             {"-reservation-ttl", "0s"},
		"rate":            {"-rate-limit-qps", "0"},
		"max":             {"-max-reservations", "0"},
		"match ports":     {"-match-ports", "6443-"},
		"forbidden cidrs": {"-forbidden-cidrs", "10.96.0.0/33"},
		"http mirror":     {"-mirror", "http://mirror.example.com/kubeedge/"},
		"short checksum":  {"-keadm-sha512", "amd64=abc"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseController(with(args...), io.Discard)
			require.Error(t, err)
		})
	}
}

// With no allow-list, no audience or no certificate the controller does not start, and says
// which flag is missing.
func TestControllerRefusesToStartOpen(t *testing.T) {
	ctx := context.Background()
	drop := func(flag string) []string {
		var out []string
		for i := 0; i < len(required); i += 2 {
			if required[i] != flag {
				out = append(out, required[i], required[i+1])
			}
		}
		return out
	}
	for flag, want := range map[string]string{
		"-allowed-groups":         "-allowed-users or -allowed-groups (chart: onboard.controller.joinAPI.allowedUsers / allowedGroups)",
		"-token-review-audiences": "-token-review needs -token-review-audiences",
		"-tls-cert-file":          "-tls-cert-file and -tls-key-file are required",
	} {
		t.Run(flag, func(t *testing.T) {
			err := run(ctx, append([]string{"controller"}, drop(flag)...), io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), want)
		})
	}
	err := run(ctx, append([]string{"controller"}, with("-allowed-groups", "system:authenticated")...), io.Discard)
	require.ErrorContains(t, err, "-allowed-groups system:authenticated: that group holds every caller")
	// The join API off, the rules controller alone needs none of it.
	_, err = parseController([]string{"-disable-join"}, io.Discard)
	require.NoError(t, err)
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
	require.ErrorContains(t, run(ctx, append([]string{"controller"}, with("-log-level", "loud")...), io.Discard), "-log-level")
}
