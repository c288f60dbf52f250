package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets a test run the real main() in a child process (inside a network namespace).
func TestMain(m *testing.M) {
	if os.Getenv("EDGETEL_ONBOARD_RUN_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Args = append([]string{"edgetel-onboard"}, os.Args[i+1:]...)
				break
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestAgentUninstallBinaryInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a network namespace")
	}
	for _, bin := range []string{"ip", "iptables-nft", "iptables-nft-save", "iptables-nft-restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipping: %s not installed (apt-get install -y iptables iproute2)", bin)
		}
	}
	ns := fmt.Sprintf("etob-main-%d", os.Getpid()%100000)
	out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ipt := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
		return string(out)
	}
	// What an earlier agent left, plus a rule of someone else's.
	ipt("iptables-nft", "-t", "nat", "-N", "EDGETEL-ONBOARD")
	ipt("iptables-nft", "-t", "nat", "-A", "EDGETEL-ONBOARD", "-p", "tcp", "--dport", "10351", "-j", "DNAT", "--to-destination", "10.0.0.5:10003")
	for _, hook := range []string{"OUTPUT", "PREROUTING"} {
		ipt("iptables-nft", "-t", "nat", "-I", hook, "-m", "comment", "--comment", "edgetel-onboard: DNAT to cloudcore", "-j", "EDGETEL-ONBOARD")
	}
	ipt("iptables-nft", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "9999", "-j", "ACCEPT")

	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command("ip", "netns", "exec", ns, self, "--", "agent", "-uninstall", "-metrics-listen", "")
	cmd.Env = append(os.Environ(), "EDGETEL_ONBOARD_RUN_MAIN=1")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	save := ipt("iptables-nft-save", "-t", "nat")
	assert.NotContains(t, save, "EDGETEL")
	assert.True(t, strings.Contains(save, "-A OUTPUT -p tcp -m tcp --dport 9999 -j ACCEPT"), save)
}
