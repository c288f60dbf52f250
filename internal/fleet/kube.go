package fleet

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KubeNode renders n as the Node object a KubeEdge cluster holds for it: edge role labels,
// InternalIP, kubelet endpoint port and the given Ready condition status.
func (n Node) KubeNode(ready corev1.ConditionStatus) *corev1.Node {
	labels := map[string]string{LabelEdgeRole: "", LabelAgentRole: ""}
	for k, v := range n.Labels {
		labels[k] = v
	}
	port := n.Port
	if port == 0 {
		port = DefaultKubeletPort
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: labels},
		Status: corev1.NodeStatus{
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.IP}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
		},
	}
}
