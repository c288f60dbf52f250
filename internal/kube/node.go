package kube

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Well-known node labels of a KubeEdge fleet.
const (
	// LabelEdgeRole marks an edge node; edged sets it with an empty value, and cloudcore's
	// IsEdgeNode (cloud/pkg/common/nodes/nodes.go) requires exactly that.
	LabelEdgeRole = "node-role.kubernetes.io/edge"
	// LabelAgentRole is set by edged next to LabelEdgeRole.
	LabelAgentRole = "node-role.kubernetes.io/agent"
	// LabelRegion and LabelSite are the standard topology labels, used for region and site.
	LabelRegion = "topology.kubernetes.io/region"
	LabelSite   = "topology.kubernetes.io/zone"
	// LabelNodeGroup is the label KubeEdge's NodeGroup controller puts on its members.
	LabelNodeGroup = "apps.kubeedge.io/belonging-to"
)

// DefaultEdgeSelector is the one default label selector for edge nodes, used by every component
// that watches them: the edge role label with an empty value, as cloudcore counts edge nodes.
const DefaultEdgeSelector = LabelEdgeRole + "="

// DefaultKubeletPort is edged's read-only port, and the port cloudcore's stream server expects in
// Host when a node reports none.
const DefaultKubeletPort = 10350

// Readiness is a node's Ready condition: "true", "false" or "unknown".
type Readiness string

// Readiness values; a node without a Ready condition yet is unknown.
const (
	ReadyTrue    Readiness = "true"
	ReadyFalse   Readiness = "false"
	ReadyUnknown Readiness = "unknown"
)

// Node is what an edge node is to edgetel, whatever source it came from.
type Node struct {
	Name string
	// IP is the InternalIP: the address cloudcore's stream server knows the node by.
	IP string
	// Addresses are the node's InternalIP and ExternalIP addresses, IP first; senders of
	// telemetry are matched against them.
	Addresses []string
	// KubeletPort is status.daemonEndpoints.kubeletEndpoint.Port (0 when unreported).
	KubeletPort int
	Ready       Readiness
	Labels      map[string]string
	Annotations map[string]string
	// Taints are spec.taints (the logs signal's lifecycle records report their changes).
	Taints []corev1.Taint
}

// IsReady follows cloudcore's nodes.IsReadyNode: Ready means condition Ready == True.
func (n Node) IsReady() bool { return n.Ready == ReadyTrue }

// Port is the node's kubelet port: the reported one, else DefaultKubeletPort.
func (n Node) Port() int {
	if n.KubeletPort == 0 {
		return DefaultKubeletPort
	}
	return n.KubeletPort
}

// Address is what cloudcore's stream server takes from the Host header: <nodeIP>:<port>.
func (n Node) Address() string {
	return net.JoinHostPort(n.IP, strconv.Itoa(n.Port()))
}

// FromKube reads the parts of a Kubernetes Node edgetel uses.
func FromKube(kn *corev1.Node) Node {
	n := Node{
		Name:        kn.Name,
		KubeletPort: int(kn.Status.DaemonEndpoints.KubeletEndpoint.Port),
		Ready:       ReadyUnknown,
		Labels:      kn.Labels,
		Annotations: kn.Annotations,
		Taints:      kn.Spec.Taints,
	}
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
		for _, a := range kn.Status.Addresses {
			if a.Type == t && a.Address != "" && !slices.Contains(n.Addresses, a.Address) {
				n.Addresses = append(n.Addresses, a.Address)
				if t == corev1.NodeInternalIP && n.IP == "" {
					n.IP = a.Address
				}
			}
		}
	}
	for _, c := range kn.Status.Conditions {
		if c.Type == corev1.NodeReady {
			switch c.Status {
			case corev1.ConditionTrue:
				n.Ready = ReadyTrue
			case corev1.ConditionFalse:
				n.Ready = ReadyFalse
			}
		}
	}
	return n
}

// slimNode drops the parts of a Node FromKube never reads (managed fields, images, capacity,
// ...): at 100,000 edge nodes the informer's store is most of the collector's memory.
func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	var conds []corev1.NodeCondition
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			conds = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:            n.Name,
			UID:             n.UID,
			ResourceVersion: n.ResourceVersion,
			Labels:          n.Labels,
			Annotations:     n.Annotations,
		},
		Spec: corev1.NodeSpec{Taints: n.Spec.Taints},
		Status: corev1.NodeStatus{
			Addresses:       n.Status.Addresses,
			DaemonEndpoints: n.Status.DaemonEndpoints,
			Conditions:      conds,
		},
	}, nil
}

// Object renders n as the Kubernetes Node object it was read from: the inverse of FromKube, for
// simulators and tests that register nodes with an API server.
func (n Node) Object() *corev1.Node {
	kn := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations},
		Spec:       corev1.NodeSpec{Taints: n.Taints},
		Status: corev1.NodeStatus{
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(n.KubeletPort)}},
		},
	}
	addrs := n.Addresses
	if len(addrs) == 0 && n.IP != "" {
		addrs = []string{n.IP}
	}
	for _, a := range addrs {
		t := corev1.NodeExternalIP
		if a == n.IP {
			t = corev1.NodeInternalIP
		}
		kn.Status.Addresses = append(kn.Status.Addresses, corev1.NodeAddress{Type: t, Address: a})
	}
	status := map[Readiness]corev1.ConditionStatus{ReadyTrue: corev1.ConditionTrue, ReadyFalse: corev1.ConditionFalse, ReadyUnknown: corev1.ConditionUnknown}[n.Ready]
	if status != "" {
		kn.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}
	}
	return kn
}

// Validate reports the first field that makes a configured node unusable.
func (n Node) Validate() error {
	if n.Name == "" {
		return errors.New("node without a name")
	}
	if net.ParseIP(n.IP) == nil {
		return fmt.Errorf("node %q: ip %q is not an IP address", n.Name, n.IP)
	}
	if n.KubeletPort < 0 || n.KubeletPort > 65535 {
		return fmt.Errorf("node %q: port %d out of range", n.Name, n.KubeletPort)
	}
	return nil
}
