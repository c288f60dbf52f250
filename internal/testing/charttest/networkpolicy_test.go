package charttest

import (
	"fmt"
	"net"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// workload is a rendered pod template with its name.
type workload struct {
	name string
	pod  corev1.PodTemplateSpec
}

func workloads(objs []Object) []workload {
	var out []workload
	for _, o := range objs {
		switch w := o.Obj.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{w.Name, w.Spec.Template})
		case *appsv1.StatefulSet:
			out = append(out, workload{w.Name, w.Spec.Template})
		case *appsv1.DaemonSet:
			out = append(out, workload{w.Name, w.Spec.Template})
		}
	}
	return out
}

// peer names what a rule admits: "*" anyone, a pod selector by its component label, else "custom".
func peer(p networkingv1.NetworkPolicyPeer) string {
	if p.PodSelector != nil && p.NamespaceSelector == nil && p.IPBlock == nil {
		if c, ok := p.PodSelector.MatchLabels["app.kubernetes.io/component"]; ok {
			return c
		}
	}
	return "custom"
}

func rulePorts(r networkingv1.NetworkPolicyIngressRule, cp corev1.ContainerPort) bool {
	if len(r.Ports) == 0 {
		return true
	}
	for _, p := range r.Ports {
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if p.Port == nil || p.Port.IntVal == cp.ContainerPort || p.Port.StrVal != "" && p.Port.StrVal == cp.Name {
			return true
		}
	}
	return false
}

// fences maps each workload to the peers each of its container ports admits ("*": anyone;
// missing: closed), from the NetworkPolicies that select its pods. A pod no policy selects is
// open on every port: it maps to nil. Host-network pods are not subject to NetworkPolicies and
// are left out.
func fences(t *testing.T, objs []Object) map[string]map[int32][]string {
	t.Helper()
	var policies []*networkingv1.NetworkPolicy
	for _, o := range objs {
		if np, ok := o.Obj.(*networkingv1.NetworkPolicy); ok {
			policies = append(policies, np)
		}
	}
	out := map[string]map[int32][]string{}
	for _, w := range workloads(objs) {
		if w.pod.Spec.HostNetwork {
			continue
		}
		var selecting []*networkingv1.NetworkPolicy
		for _, np := range policies {
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			require.NoError(t, err)
			if sel.Matches(labels.Set(w.pod.Labels)) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				selecting = append(selecting, np)
			}
		}
		if len(selecting) == 0 {
			out[w.name] = nil
			continue
		}
		ports := map[int32][]string{}
		for _, c := range w.pod.Spec.Containers {
			for _, cp := range c.Ports {
				for _, np := range selecting {
					for _, r := range np.Spec.Ingress {
						if !rulePorts(r, cp) {
							continue
						}
						if len(r.From) == 0 {
							ports[cp.ContainerPort] = append(ports[cp.ContainerPort], "*")
						}
						for _, p := range r.From {
							ports[cp.ContainerPort] = append(ports[cp.ContainerPort], peer(p))
						}
					}
				}
			}
		}
		for p := range ports {
			slices.Sort(ports[p])
			ports[p] = slices.Compact(ports[p])
		}
		out[w.name] = ports
	}
	return out
}

// TestNetworkPoliciesFenceEveryPort: with the default values (and with the Thanos scale path and
// the compactor on), every collector, query and Thanos workload is selected by a NetworkPolicy,
// and each of its ports admits exactly the peers in the table: the collector's head API only
// edgetel-query and the Thanos sidecar's pod, StoreAPIs only Thanos' querier.
func TestNetworkPoliciesFenceEveryPort(t *testing.T) {
	any := []string{"*"}
	for name, tc := range map[string]struct {
		args []string
		want map[string]map[int32][]string
	}{
		"defaults": {nil, map[string]map[int32][]string{
			"edgetel-collector": {8888: any, 13133: any, 9095: {"query"}},
			"edgetel-query":     {9090: any, 9091: any},
		}},
		"thanos": {[]string{"--set", "thanos.enabled=true", "--set", "thanos.compactor.enabled=true", "--set", "bucket.existingSecret=b"},
			map[string]map[int32][]string{
				// The sidecar reads the head at its pod's own address.
				"edgetel-collector":    {8888: any, 13133: any, 9095: {"collector", "query"}, 10901: {"thanos-query"}, 10902: any},
				"edgetel-query":        {9090: any, 9091: any},
				"edgetel-thanos-store": {10901: {"thanos-query"}, 10902: any},
				// Its own StoreAPI serves nobody in the chart: closed.
				"edgetel-thanos-query": {10902: any},
				"edgetel-compactor":    {10902: any},
			}},
		"query and Thanos API fenced to Grafana": {[]string{"--set", "thanos.enabled=true", "--set", "bucket.existingSecret=b",
			"--set", "query.networkPolicy.from[0].podSelector.matchLabels.app=grafana",
			"--set", "thanos.networkPolicy.queryFrom[0].namespaceSelector.matchLabels.team=obs"},
			map[string]map[int32][]string{
				"edgetel-collector":    {8888: any, 13133: any, 9095: {"collector", "query"}, 10901: {"thanos-query"}, 10902: any},
				"edgetel-query":        {9090: {"custom"}, 9091: any},
				"edgetel-thanos-store": {10901: {"thanos-query"}, 10902: any},
				"edgetel-thanos-query": {10902: {"custom"}},
			}},
		"no query": {[]string{"--set", "query.enabled=false"}, map[string]map[int32][]string{
			"edgetel-collector": {8888: any, 13133: any},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			objs := rendered(t, tc.args...)
			assert.Equal(t, fmt.Sprint(tc.want), fmt.Sprint(fences(t, objs)))
		})
	}
}

// Each component's policy can be turned off, and then its workload is open.
func TestNetworkPoliciesCanBeTurnedOff(t *testing.T) {
	objs := rendered(t, "--set", "thanos.enabled=true", "--set", "bucket.existingSecret=b",
		"--set", "collector.networkPolicy.enabled=false", "--set", "query.networkPolicy.enabled=false",
		"--set", "thanos.networkPolicy.enabled=false")
	for name, ports := range fences(t, objs) {
		assert.Nil(t, ports, "%s: no policy selects it", name)
	}
}

// egressAllows says whether the policy lets its pods open a TCP or UDP connection to ip:port.
func egressAllows(t *testing.T, np *networkingv1.NetworkPolicy, ip string, port int32, proto corev1.Protocol) bool {
	t.Helper()
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		return true
	}
	addr := net.ParseIP(ip)
	require.NotNil(t, addr, ip)
	for _, r := range np.Spec.Egress {
		portOK := len(r.Ports) == 0
		for _, p := range r.Ports {
			pp := corev1.ProtocolTCP
			if p.Protocol != nil {
				pp = *p.Protocol
			}
			portOK = portOK || pp == proto && (p.Port == nil || p.Port.IntVal == port)
		}
		peerOK := len(r.To) == 0
		for _, to := range r.To {
			if to.IPBlock == nil {
				continue
			}
			_, cidr, err := net.ParseCIDR(to.IPBlock.CIDR)
			require.NoError(t, err)
			peerOK = peerOK || cidr.Contains(addr)
		}
		if portOK && peerOK {
			return true
		}
	}
	return false
}

func collectorPolicy(t *testing.T, objs []Object) *networkingv1.NetworkPolicy {
	t.Helper()
	for _, o := range objs {
		if np, ok := o.Obj.(*networkingv1.NetworkPolicy); ok && np.Name == "edgetel-collector" {
			return np
		}
	}
	require.FailNow(t, "no collector NetworkPolicy")
	return nil
}

// With transport apiserver the collector holds nodes/proxy and parses untrusted edge bodies: its
// egress is fenced to DNS, the API server and what the operator lists, so it cannot reach a
// kubelet (or anything else) directly. The chart refuses to guess the API server's address.
func TestAPIServerTransportFencesCollectorEgress(t *testing.T) {
	_, err := Render(t, "--set", "collector.transport=apiserver", "--set", "collector.apiserver.allNodes=true")
	require.ErrorContains(t, err, "collector.networkPolicy.apiServerCIDRs is required")

	np := collectorPolicy(t, rendered(t, ciValues(t, "apiserver-values.yaml")...))
	for _, c := range []struct {
		ip    string
		port  int32
		proto corev1.Protocol
		want  bool
	}{
		{"10.0.0.11", 6443, corev1.ProtocolTCP, true},   // the API server
		{"10.0.0.11", 443, corev1.ProtocolTCP, true},    // the API server
		{"10.96.0.10", 53, corev1.ProtocolUDP, true},    // DNS
		{"203.0.113.7", 443, corev1.ProtocolTCP, true},  // egressTo: the remote-write endpoint
		{"10.0.0.11", 10250, corev1.ProtocolTCP, false}, // a kubelet, even on the API server's host
		{"10.0.0.42", 10250, corev1.ProtocolTCP, false}, // a node's kubelet
		{"10.0.0.42", 10350, corev1.ProtocolTCP, false}, // edged's read-only port
		{"203.0.113.7", 80, corev1.ProtocolTCP, false},  // egressTo names its port
	} {
		assert.Equal(t, c.want, egressAllows(t, np, c.ip, c.port, c.proto), "%s:%d/%s", c.ip, c.port, c.proto)
	}

	for _, args := range [][]string{nil, {"--set", "collector.transport=apiserver", "--set", "collector.apiserver.allNodes=true",
		"--set", "collector.networkPolicy.egressUnrestricted=true"}} {
		np := collectorPolicy(t, rendered(t, args...))
		assert.NotContains(t, np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress, "%v: egress open", args)
		assert.True(t, egressAllows(t, np, "10.0.0.42", 10250, corev1.ProtocolTCP))
	}
}
