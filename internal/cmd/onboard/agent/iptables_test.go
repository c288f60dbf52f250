package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
)

func TestRuleLine(t *testing.T) {
	line, err := RuleLine(DefaultChain, rule("10.20.0.1", "10350", "10.0.0.5", "10003"))
	require.NoError(t, err)
	assert.Equal(t, "-A EDGETEL-ONBOARD -d 10.20.0.1/32 -p tcp -m tcp --dport 10350 -j DNAT --to-destination 10.0.0.5:10003", line)
	line, err = RuleLine(DefaultChain, rule("", "10351", "10.0.0.5", "10003"))
	require.NoError(t, err)
	assert.Equal(t, "-A EDGETEL-ONBOARD -p tcp -m tcp --dport 10351 -j DNAT --to-destination 10.0.0.5:10003", line)

	for name, r := range map[string]apis.Rule{
		"other chain":      {Table: "nat", Chain: "OUTPUT", Jump: "DNAT", Protocol: "tcp", SourcePort: "1", DestinationIP: "10.0.0.5", DestinationPort: "1"},
		"other table":      {Table: "filter", Chain: DefaultChain, Jump: "DNAT", Protocol: "tcp", SourcePort: "1", DestinationIP: "10.0.0.5", DestinationPort: "1"},
		"other jump":       {Table: "nat", Chain: DefaultChain, Jump: "ACCEPT", Protocol: "tcp", SourcePort: "1", DestinationIP: "10.0.0.5", DestinationPort: "1"},
		"udp":              {Table: "nat", Chain: DefaultChain, Jump: "DNAT", Protocol: "udp", SourcePort: "1", DestinationIP: "10.0.0.5", DestinationPort: "1"},
		"port injection":   rule("", "10350 -j ACCEPT", "10.0.0.5", "10003"),
		"port zero":        rule("", "0", "10.0.0.5", "10003"),
		"target port":      rule("", "10350", "10.0.0.5", "70000"),
		"target hostname":  rule("", "10350", "cloudcore.kubeedge", "10003"),
		"target ipv6":      rule("", "10350", "2001:db8::1", "10003"),
		"source newline":   rule("10.0.0.1\n-A OUTPUT -j DROP", "10350", "10.0.0.5", "10003"),
		"source with mask": rule("10.0.0.0/8", "10350", "10.0.0.5", "10003"),
	} {
		_, err := RuleLine(DefaultChain, r)
		assert.Error(t, err, name)
	}
}

func TestParseSaveAndRestoreInput(t *testing.T) {
	want := []string{"-A EDGETEL-ONBOARD -p tcp -m tcp --dport 10351 -j DNAT --to-destination 10.0.0.5:10003"}
	save := `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:EDGETEL-ONBOARD - [0:0]
-A PREROUTING -m comment --comment "edgetel-onboard: DNAT to cloudcore" -j EDGETEL-ONBOARD
-A OUTPUT -j EDGETEL-ONBOARD
-A OUTPUT -m comment --comment "edgetel-onboard: DNAT to cloudcore" -j EDGETEL-ONBOARD
-A EDGETEL-ONBOARD -p tcp -m tcp --dport 10351 -j DNAT --to-destination 10.0.0.5:10003
COMMIT
`
	o := parseSave(save, DefaultChain)
	assert.True(t, o.chainExists)
	assert.Equal(t, want, o.rules)
	assert.False(t, o.inSync(DefaultChain, want), "two jumps in OUTPUT")
	assert.Equal(t, `*nat
:EDGETEL-ONBOARD - [0:0]
-A EDGETEL-ONBOARD -p tcp -m tcp --dport 10351 -j DNAT --to-destination 10.0.0.5:10003
-D OUTPUT -j EDGETEL-ONBOARD
-D OUTPUT -m comment --comment "edgetel-onboard: DNAT to cloudcore" -j EDGETEL-ONBOARD
-I OUTPUT 1 -m comment --comment "edgetel-onboard: DNAT to cloudcore" -j EDGETEL-ONBOARD
COMMIT
`, restoreInput(o, DefaultChain, want), "PREROUTING's correct jump is left alone")
}

func TestDetectRejectsUnknownMode(t *testing.T) {
	_, err := Detect(context.Background(), Runner{}, "iptables-nft; reboot")
	require.ErrorContains(t, err, "want auto, nft or legacy")
}

func TestNewRejectsLongChain(t *testing.T) {
	_, err := New(Config{Chain: "A-CHAIN-NAME-FAR-TOO-LONG-FOR-IPTABLES"})
	require.Error(t, err)
}

// The restore runs with -w. (iptables 1.8.9's legacy restore waits for the lock even without
// it, see TestRestoreWaitsForXtablesLock; older releases fail at once, so the flag is passed.)
func TestRestoreAsksToWaitForTheLock(t *testing.T) {
	argv := filepath.Join(t.TempDir(), "argv")
	ipt := IPTables{Mode: "nft", Save: "iptables-nft-save", Restore: "iptables-nft-restore",
		Runner: Runner{Prefix: []string{"sh", "-c", `printf '%s\n' "$@" > "$0"`, argv}}}
	require.NoError(t, ipt.RestoreNoFlush(context.Background(), "*nat\nCOMMIT\n"))
	got, err := os.ReadFile(argv)
	require.NoError(t, err)
	assert.Equal(t, "iptables-nft-restore\n-w\n--noflush\n", string(got))
}
