package rules

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
)

func TestCloudcoresFromSlices(t *testing.T) {
	v6 := slice("v6", 10003, map[string]bool{"2001:db8::5": true})
	v6.AddressType = discoveryv1.AddressTypeIPv6
	noPort := slice("noport", 10003, map[string]bool{"10.0.0.9": true})
	noPort.Ports = nil
	unknownReady := slice("unknown", 10003, nil)
	unknownReady.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.8"}}}
	got := CloudcoresFromSlices([]*discoveryv1.EndpointSlice{
		slice("a", 20003, map[string]bool{"10.0.0.6": true, "10.0.0.5": true, "10.0.0.7": false}), v6, noPort, unknownReady,
	}, 10003)
	assert.Equal(t, []Cloudcore{{"10.0.0.5", 20003}, {"10.0.0.6", 20003}, {"10.0.0.8", 10003}, {"10.0.0.9", 10003}}, got,
		"sorted, ready (or unknown) IPv4 only, stream port from the named port or the default")
}

func TestDesired(t *testing.T) {
	ccs := []Cloudcore{{"10.0.0.5", 10003}, {"10.0.0.6", 10003}}
	rec := TunnelPortRecord{IPTunnelPort: map[string]int{"10.0.0.5": 10351, "10.0.0.6": 10352, "10.0.0.99": 10353, "10.0.0.7": 70000}}
	v6 := node("edge-v6", "2001:db8::20", 0)

	res, err := Desired(Input{Model: apis.ModelTunnelPort, Cloudcores: ccs, Record: rec,
		Nodes: []*corev1.Node{node("edge-b", "10.20.0.2", 10352), node("edge-a", "10.20.0.1", 10351), node("edge-new", "10.20.0.3", 0)}})
	require.NoError(t, err)
	assert.Equal(t, []apis.Rule{eip("edge-a", "10.20.0.1", 10351, "10.0.0.5"), eip("edge-b", "10.20.0.2", 10352, "10.0.0.6")}, res.Rules,
		"one rule per node, matching its address: never a port-only rule")
	assert.Len(t, res.Problems, 3, "a vanished cloudcore, a bad port, a node whose port no cloudcore holds")

	res, err = Desired(Input{Model: apis.ModelEdgeIP, Cloudcores: ccs, Record: rec,
		Nodes: []*corev1.Node{node("edge-b", "10.20.0.2", 10352), node("edge-a", "10.20.0.1", 0), v6}})
	require.NoError(t, err)
	assert.Equal(t, []apis.Rule{eip("edge-a", "10.20.0.1", 10350, "10.0.0.5"), eip("edge-b", "10.20.0.2", 10352, "10.0.0.6")}, res.Rules)
	assert.Equal(t, []string{"node edge-v6: no IPv4 InternalIP"}, res.Problems)

	res, err = Desired(Input{Model: apis.ModelEdgeIP, Nodes: []*corev1.Node{node("edge-a", "10.20.0.1", 0)}})
	require.NoError(t, err)
	assert.Empty(t, res.Rules)
	assert.Equal(t, []string{"no ready cloudcore endpoint"}, res.Problems)

	_, err = Desired(Input{Model: "both"})
	require.Error(t, err)
}

// TestDesiredRefusesSharedAddressesAndPodCIDRs: two edge nodes claiming one InternalIP get no
// rule (either could be taking the other's traffic), and no rule matches an address inside any
// node's pod CIDR.
func TestDesiredRefusesSharedAddressesAndPodCIDRs(t *testing.T) {
	ccs := []Cloudcore{{"10.0.0.5", 10003}}
	podNet := node("edge-in-pods", "10.244.3.7", 0)
	cloud := node("master-1", "192.168.1.1", 0)
	cloud.Spec.PodCIDRs = []string{"10.244.3.0/24"}
	res, err := Desired(Input{Model: apis.ModelEdgeIP, Cloudcores: ccs, CloudNodes: []*corev1.Node{cloud},
		Nodes: []*corev1.Node{node("edge-a", "10.20.0.1", 0), node("edge-thief", "10.20.0.1", 0), node("edge-b", "10.20.0.2", 0), podNet}})
	require.NoError(t, err)
	assert.Equal(t, []apis.Rule{eip("edge-b", "10.20.0.2", 10350, "10.0.0.5")}, res.Rules)
	assert.Equal(t, 3, res.Refused)
	assert.Contains(t, res.Problems, "node edge-a: refused by the DNAT policy: match address 10.20.0.1 is claimed by several edge nodes (edge-a, edge-thief) (10.20.0.1/32)")
	assert.Contains(t, res.Problems, "node edge-in-pods: refused by the DNAT policy: match address 10.244.3.7 is the pod CIDR of node master-1 (10.244.3.0/24)")
}

func TestParseTunnelPortRecord(t *testing.T) {
	rec, err := ParseTunnelPortRecord(nil)
	require.NoError(t, err)
	assert.Empty(t, rec.IPTunnelPort)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		TunnelPortAnnotation: `{"ipTunnelPort":{"10.0.0.5":10351,"10.0.0.6":10352},"port":{"10351":true,"10352":true}}`}}}
	rec, err = ParseTunnelPortRecord(cm)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"10.0.0.5": 10351, "10.0.0.6": 10352}, rec.IPTunnelPort)
	assert.Equal(t, map[int]bool{10351: true, 10352: true}, rec.Port)
	cm.Annotations[TunnelPortAnnotation] = `{"ipTunnelPort":{"10.0.0.5":"x"}}`
	_, err = ParseTunnelPortRecord(cm)
	require.ErrorContains(t, err, TunnelPortAnnotation)
}
