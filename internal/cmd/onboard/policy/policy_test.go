package policy

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
)

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts("10350-10999, 12000")
	require.NoError(t, err)
	assert.Equal(t, []PortRange{{10350, 10999}, {12000, 12000}}, got)
	assert.Equal(t, "10350-10999,12000", FormatPorts(got))
	for _, bad := range []string{"", "0", "10-5", "70000", "a-b", "1-"} {
		_, err := ParsePorts(bad)
		assert.Error(t, err, bad)
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes("10.96.0.0/12, 192.168.1.100,,::ffff:10.0.0.1")
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("192.168.1.100/32"),
		netip.MustParsePrefix("10.0.0.1/32")}, got)
	_, err = ParsePrefixes("10.96.0.0/33")
	require.Error(t, err)
}

func TestCheck(t *testing.T) {
	ports, _ := ParsePorts(DefaultPorts)
	base := Policy{Ports: ports}
	base.Forbid("the Service CIDR", netip.MustParsePrefix("10.96.0.0/12"))
	master := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "master-1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.1"}}}}
	edge := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-1", Labels: map[string]string{"edge": ""}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.20.0.1"}}}}
	p := Build(base, []netip.AddrPort{netip.MustParseAddrPort("10.0.0.5:10003")}, []*corev1.Node{master, edge},
		func(n *corev1.Node) bool { _, ok := n.Labels["edge"]; return ok })
	r := func(src, sport, dst, dport string) apis.Rule {
		return apis.Rule{SourceIP: src, SourcePort: sport, DestinationIP: dst, DestinationPort: dport}
	}
	require.NoError(t, p.Check(r("10.20.0.1", "10350", "10.0.0.5", "10003")))
	require.NoError(t, p.Check(r("10.20.0.1", "10999", "10.0.0.5", "10003")))
	for name, tc := range map[string]struct {
		rule   apis.Rule
		reason string
	}{
		"empty match":       {r("", "10350", "10.0.0.5", "10003"), ReasonEmptyMatch},
		"loopback match":    {r("127.0.0.1", "10350", "10.0.0.5", "10003"), ReasonAddress},
		"link-local match":  {r("169.254.169.254", "10350", "10.0.0.5", "10003"), ReasonAddress},
		"multicast match":   {r("224.0.0.1", "10350", "10.0.0.5", "10003"), ReasonAddress},
		"broadcast match":   {r("255.255.255.255", "10350", "10.0.0.5", "10003"), ReasonAddress},
		"unspecified match": {r("0.0.0.0", "10350", "10.0.0.5", "10003"), ReasonAddress},
		"cloud node":        {r("192.168.1.1", "10350", "10.0.0.5", "10003"), ReasonAddress},
		"cloudcore itself":  {r("10.0.0.5", "10350", "10.0.0.5", "10003"), ReasonAddress},
		"Service CIDR":      {r("10.96.0.1", "10350", "10.0.0.5", "10003"), ReasonAddress},
		"port 6443":         {r("10.20.0.1", "6443", "10.0.0.5", "10003"), ReasonPort},
		"port 10250":        {r("10.20.0.1", "10250", "10.0.0.5", "10003"), ReasonPort},
		"loopback target":   {r("10.20.0.1", "10350", "127.0.0.1", "10003"), ReasonTarget},
		"other target":      {r("10.20.0.1", "10350", "10.0.0.6", "10003"), ReasonTarget},
		"other target port": {r("10.20.0.1", "10350", "10.0.0.5", "22"), ReasonTarget},
		"bad address":       {r("10.20.0", "10350", "10.0.0.5", "10003"), ReasonMalformed},
		"bad port":          {r("10.20.0.1", "x", "10.0.0.5", "10003"), ReasonMalformed},
	} {
		err := p.Check(tc.rule)
		if assert.Error(t, err, name) {
			assert.Equal(t, tc.reason, Reason(err), "%s: %v", name, err)
		}
	}
	// No targets known: nothing is acceptable.
	require.Error(t, Policy{Ports: ports}.Check(r("10.20.0.1", "10350", "10.0.0.5", "10003")))
}

// TestBuildForbidsPodCIDRsAndSharedAddresses: as the agent builds it (every node, edge ones by
// label), the policy refuses an address inside any node's pod CIDR and an InternalIP that two
// edge nodes claim, while an edge node's own unique address stays allowed.
func TestBuildForbidsPodCIDRsAndSharedAddresses(t *testing.T) {
	ports, _ := ParsePorts(DefaultPorts)
	edge := func(name, ip string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"edge": "true"}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
	}
	master := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "master-1"}, Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.0.0/24"}}}
	withPods := edge("edge-c", "10.20.0.3")
	withPods.Spec.PodCIDR = "10.244.9.0/24"
	p := Build(Policy{Ports: ports}, nil, []*corev1.Node{master, edge("edge-a", "10.20.0.1"), edge("edge-b", "10.20.0.1"), withPods},
		func(n *corev1.Node) bool { return n.Labels["edge"] == "true" })
	assert.ErrorContains(t, p.CheckMatch(netip.MustParseAddr("10.20.0.1"), 10350), "claimed by several edge nodes (edge-a, edge-b)")
	assert.ErrorContains(t, p.CheckMatch(netip.MustParseAddr("10.244.0.7"), 10350), "the pod CIDR of node master-1")
	assert.ErrorContains(t, p.CheckMatch(netip.MustParseAddr("10.244.9.7"), 10350), "the pod CIDR of node edge-c")
	assert.NoError(t, p.CheckMatch(netip.MustParseAddr("10.20.0.3"), 10350))
}
