package kube

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// NodeFile is the node file: what the kubeedge receiver's discovery mode file reads and what
// edgesim writes as its fleet file. Both sides use this one schema (documented in the receiver's
// README):
//
//	{"nodes": [{"name": "edge-0001", "ip": "10.20.0.1", "port": 10350, "labels": {...},
//	  "ready": "true", "pods": [{"namespace": "apps", "name": "p", "labels": {...}, "containers": ["c"]}]}]}
type NodeFile struct {
	Nodes []FileNode `json:"nodes"`
}

// FileNode is one node of a node file.
type FileNode struct {
	Name string `json:"name"`
	// IP is the node's InternalIP. Through cloudcore it only travels in the Host header.
	IP string `json:"ip"`
	// Port is the kubelet port (status.daemonEndpoints.kubeletEndpoint.Port); 0 is edged's.
	Port   int               `json:"port"`
	Labels map[string]string `json:"labels,omitempty"`
	// Direct is host:port where the node's kubelet endpoints answer directly: edgesim's own,
	// deprecated in the receiver, which still reads it for one release.
	Direct string `json:"direct,omitempty"`
	// Ready is the node's Ready condition ("true", "false", "unknown"); empty is "true".
	Ready Readiness `json:"ready,omitempty"`
	// Pods are the node's pods whose container logs may be followed (the logs signal).
	Pods []Pod `json:"pods,omitempty"`
}

// Node is n as edgetel's Node.
func (n FileNode) Node() Node {
	ready := n.Ready
	if ready == "" {
		ready = ReadyTrue
	}
	return Node{Name: n.Name, IP: n.IP, Addresses: []string{n.IP}, KubeletPort: n.Port, Ready: ready, Labels: n.Labels}
}

// Address is what cloudcore's stream server takes from the Host header: <nodeIP>:<port>.
func (n FileNode) Address() string { return n.Node().Address() }

// Validate reports the first field that makes the node unusable.
func (n FileNode) Validate() error {
	switch n.Ready {
	case "", ReadyTrue, ReadyFalse, ReadyUnknown:
	default:
		return fmt.Errorf("node %q: ready: must be %q, %q or %q, got %q", n.Name, ReadyTrue, ReadyFalse, ReadyUnknown, n.Ready)
	}
	return n.Node().Validate()
}

// KubeNode renders n as the Node object a KubeEdge cluster holds for it, for simulators and
// tests: the edge role labels edged sets, InternalIP, kubelet port (edged's when unset) and the
// given Ready condition.
func (n FileNode) KubeNode(ready corev1.ConditionStatus) *corev1.Node {
	k := n.Node()
	k.KubeletPort = k.Port()
	k.Labels = map[string]string{LabelEdgeRole: "", LabelAgentRole: ""}
	for key, v := range n.Labels {
		k.Labels[key] = v
	}
	kn := k.Object()
	kn.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	return kn
}
