package agent

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/record"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
)

const edgeIP = "10.250.0.5"

func rule(sourceIP, sourcePort, toIP, toPort string) apis.Rule {
	return apis.Rule{Table: "nat", Chain: DefaultChain, Jump: "DNAT", Protocol: "tcp", SourceIP: sourceIP,
		SourcePort: sourcePort, DestinationIP: toIP, DestinationPort: toPort}
}

func desired(rules ...apis.Rule) *apis.IPTablesRules {
	return &apis.IPTablesRules{ObjectMeta: metav1.ObjectMeta{Namespace: "edgetel", Name: "edgetel-onboard"},
		Spec: apis.Spec{Model: apis.ModelEdgeIP, Rules: rules}}
}

// netnsPolicy is the DNAT policy of the topology: cloudcore's endpoint is the only target, and
// the API server host's own address is never matched.
func netnsPolicy(tp topology) func() policy.Policy {
	ports, _ := policy.ParsePorts(policy.DefaultPorts)
	p := policy.Policy{Ports: ports, Targets: []netip.AddrPort{netip.MustParseAddrPort(tp.ccIP + ":10003")}}
	p.Forbid("the API server's address", netip.MustParsePrefix(tp.apiIP+"/32"))
	p.Forbid("the Service CIDR", netip.MustParsePrefix("10.96.0.0/12"))
	return func() policy.Policy { return p }
}

func newAgent(t *testing.T, tp topology, reg *prometheus.Registry, extra func(*Config)) *Agent {
	t.Helper()
	ipt, err := Detect(context.Background(), Runner{Prefix: []string{"ip", "netns", "exec", tp.api}}, "auto")
	require.NoError(t, err)
	cfg := Config{IPTables: ipt, NodeName: "master-1", Registry: reg, Policy: netnsPolicy(tp)}
	if extra != nil {
		extra(&cfg)
	}
	a, err := New(cfg)
	require.NoError(t, err)
	return a
}

// othersRules are what kube-proxy, a CNI or an operator put there; the agent must not touch them.
var othersRules = []string{
	"-A OUTPUT -p tcp -m tcp --dport 9999 -j ACCEPT",
	"-A KUBE-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 192.168.1.1:6443",
	"-A PREROUTING -j KUBE-SERVICES",
}

func addOthers(t *testing.T, tp topology) {
	tp.ipt(t, "iptables", "-t", "nat", "-N", "KUBE-SERVICES")
	for _, r := range othersRules {
		tp.ipt(t, append([]string{"iptables", "-t", "nat"}, strings.Fields(r)...)...)
	}
	tp.ipt(t, "iptables", "-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
}

func requireOthers(t *testing.T, tp topology) {
	t.Helper()
	save := tp.ipt(t, "iptables-save")
	for _, r := range othersRules {
		assert.Contains(t, save, r+"\n")
	}
	assert.Contains(t, save, "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n")
}

func TestAgentInNetworkNamespaces(t *testing.T) {
	for i, backend := range []string{"nft", "legacy"} {
		t.Run(backend, func(t *testing.T) { testAgent(t, newTopology(t, 1+i, backend)) })
	}
}

func testAgent(t *testing.T, tp topology) {
	tp.cloudcore(t, 10003)
	addOthers(t, tp)
	reg := prometheus.NewRegistry()
	a := newAgent(t, tp, reg, nil)
	require.Equal(t, tp.backend, a.cfg.IPTables.Mode, "auto-detection follows the backend holding the host's rules")
	ctx := context.Background()
	want := desired(
		rule(edgeIP, "10350", tp.ccIP, "10003"),       // edge-ip model
		rule("10.250.0.6", "10351", tp.ccIP, "10003"), // tunnel-port model
	)

	// Before: nothing reaches the edge IP.
	_, err := tp.dial(edgeIP + ":10350")
	require.Error(t, err)

	res, err := a.Check(ctx, want)
	require.NoError(t, err)
	assert.True(t, res.Changed)
	assert.False(t, res.Drift, "the first apply is not drift")
	save := tp.ipt(t, "iptables-save", "-t", "nat")
	for _, line := range []string{
		":" + DefaultChain + " - [0:0]",
		`-A OUTPUT -m comment --comment "edgetel-onboard: DNAT to cloudcore" -j EDGETEL-ONBOARD`,
		`-A PREROUTING -m comment --comment "edgetel-onboard: DNAT to cloudcore" -j EDGETEL-ONBOARD`,
		"-A EDGETEL-ONBOARD -d 10.250.0.5/32 -p tcp -m tcp --dport 10350 -j DNAT --to-destination " + tp.ccIP + ":10003",
		"-A EDGETEL-ONBOARD -d 10.250.0.6/32 -p tcp -m tcp --dport 10351 -j DNAT --to-destination " + tp.ccIP + ":10003",
	} {
		assert.Contains(t, save, line+"\n")
	}
	requireOthers(t, tp)

	// A real TCP connection from the API server host lands on cloudcore.
	greeting, err := tp.dial(edgeIP + ":10350")
	require.NoError(t, err)
	assert.Equal(t, "cloudcore 10003", greeting)
	greeting, err = tp.dial("10.250.0.6:10351")
	require.NoError(t, err)
	assert.Equal(t, "cloudcore 10003", greeting)
	_, err = tp.dial("10.250.9.9:10351")
	require.Error(t, err, "no rule matches a port on every address")

	// A second check with nothing changed writes nothing.
	res, err = a.Check(ctx, want)
	require.NoError(t, err)
	assert.False(t, res.Changed)
	assert.Equal(t, 1.0, testutil.ToFloat64(a.m.checks.WithLabelValues("in_sync")))

	// Someone deletes a rule and a jump: the next check puts both back and counts the drift.
	tp.ipt(t, "iptables", "-t", "nat", "-D", DefaultChain, "-d", edgeIP+"/32", "-p", "tcp", "-m", "tcp", "--dport", "10350",
		"-j", "DNAT", "--to-destination", tp.ccIP+":10003")
	tp.ipt(t, "iptables", "-t", "nat", "-D", "OUTPUT", "-m", "comment", "--comment", JumpComment, "-j", DefaultChain)
	_, err = tp.dial(edgeIP + ":10350")
	require.Error(t, err, "the deletion really broke the path")
	res, err = a.Check(ctx, want)
	require.NoError(t, err)
	assert.True(t, res.Drift)
	assert.Equal(t, 1.0, testutil.ToFloat64(a.m.drift))
	assert.Equal(t, 1.0, testutil.ToFloat64(a.m.repairs))
	greeting, err = tp.dial(edgeIP + ":10350")
	require.NoError(t, err)
	assert.Equal(t, "cloudcore 10003", greeting)
	save = tp.ipt(t, "iptables-save", "-t", "nat")
	assert.Equal(t, 1, strings.Count(save, "-A OUTPUT -m comment --comment \"edgetel-onboard"), "exactly one jump")
	requireOthers(t, tp)

	// A duplicated jump and a stray rule in our chain are drift too.
	tp.ipt(t, "iptables", "-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", JumpComment, "-j", DefaultChain)
	tp.ipt(t, "iptables", "-t", "nat", "-A", DefaultChain, "-p", "tcp", "--dport", "22", "-j", "DNAT", "--to-destination", "10.1.1.1:22")
	res, err = a.Check(ctx, want)
	require.NoError(t, err)
	assert.True(t, res.Drift)
	save = tp.ipt(t, "iptables-save", "-t", "nat")
	assert.Equal(t, 1, strings.Count(save, "-A OUTPUT -m comment --comment \"edgetel-onboard"))
	assert.NotContains(t, save, "10.1.1.1:22")

	// New desired rules are an update, not drift; invalid rules are refused, the rest applied.
	res, err = a.Check(ctx, desired(rule(edgeIP, "10352", tp.ccIP, "10003"),
		rule("10.250.0.6", "10350", "not-an-ip", "10003"), apis.Rule{Table: "filter", Chain: "INPUT", Jump: "ACCEPT"}))
	require.NoError(t, err)
	assert.False(t, res.Drift)
	assert.Len(t, res.Invalid, 2)
	assert.Equal(t, 2.0, testutil.ToFloat64(a.m.invalid))
	_, err = tp.dial(edgeIP + ":10350")
	require.Error(t, err, "the old rule is gone")
	greeting, err = tp.dial(edgeIP + ":10352")
	require.NoError(t, err)
	assert.Equal(t, "cloudcore 10003", greeting)

	// Uninstall leaves nothing of ours and everything of theirs.
	require.NoError(t, a.Uninstall(ctx))
	save = tp.ipt(t, "iptables-save")
	assert.NotContains(t, save, "EDGETEL")
	assert.NotContains(t, save, "edgetel")
	requireOthers(t, tp)
	_, err = tp.dial(edgeIP + ":10352")
	require.Error(t, err)
	require.NoError(t, a.Uninstall(ctx), "uninstall twice is fine")
}

func TestAgentRunFollowsTheObject(t *testing.T) {
	tp := newTopology(t, 3, "nft")
	tp.cloudcore(t, 10003)
	addOthers(t, tp)
	obj := desired(rule(edgeIP, "10350", tp.ccIP, "10003"))
	u, err := apis.ToUnstructured(obj)
	require.NoError(t, err)
	// Created through the client: seeding the fake would file it under a guessed plural.
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{apis.GVR: apis.Kind + "List"})
	_, err = dyn.Resource(apis.GVR).Namespace("edgetel").Create(context.Background(), u, metav1.CreateOptions{})
	require.NoError(t, err)
	events := record.NewFakeRecorder(100)
	a := newAgent(t, tp, prometheus.NewRegistry(), func(c *Config) {
		c.Dynamic, c.Namespace, c.Name, c.Interval, c.Recorder = dyn, "edgetel", "edgetel-onboard", 200*time.Millisecond, events
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	reaches := func(addr string) func() bool {
		return func() bool { g, err := tp.dial(addr); return err == nil && g == "cloudcore 10003" }
	}
	require.Eventually(t, reaches(edgeIP+":10350"), 5*time.Second, 50*time.Millisecond)
	requireEvent(t, events, "RulesApplied")

	// Deleted behind the agent's back: back within an interval, with an event.
	tp.ipt(t, "iptables", "-t", "nat", "-F", DefaultChain)
	require.Eventually(t, reaches(edgeIP+":10350"), 5*time.Second, 50*time.Millisecond)
	requireEvent(t, events, "DriftRepaired")
	assert.GreaterOrEqual(t, testutil.ToFloat64(a.m.repairs), 1.0)

	// The object changes: the rules follow.
	obj.Spec.Rules = []apis.Rule{rule("10.250.0.6", "10350", tp.ccIP, "10003")}
	u, err = apis.ToUnstructured(obj)
	require.NoError(t, err)
	_, err = dyn.Resource(apis.GVR).Namespace("edgetel").Update(context.Background(), u, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, reaches("10.250.0.6:10350"), 5*time.Second, 50*time.Millisecond)

	// The object is deleted (the chart is uninstalled): the chain goes.
	require.NoError(t, dyn.Resource(apis.GVR).Namespace("edgetel").Delete(context.Background(), "edgetel-onboard", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		return !strings.Contains(tp.ipt(t, "iptables-save"), "EDGETEL")
	}, 5*time.Second, 50*time.Millisecond)
	requireOthers(t, tp)
}

func requireEvent(t *testing.T, events *record.FakeRecorder, reason string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-events.Events:
			if strings.Contains(e, reason) {
				assert.Contains(t, e, "master-1")
				return
			}
		case <-deadline:
			t.Fatalf("no %s event", reason)
		}
	}
}
