package fleet

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/edgetel/edgetel/internal/kube"
)

// KubeNode renders n as the Node object a KubeEdge cluster holds for it: edge role labels,
// InternalIP, kubelet endpoint port (edged's default when unset) and the given Ready condition.
func (n Node) KubeNode(ready corev1.ConditionStatus) *corev1.Node {
	k := n.Kube()
	if k.KubeletPort == 0 {
		k.KubeletPort = kube.DefaultKubeletPort
	}
	k.Labels = map[string]string{kube.LabelEdgeRole: "", kube.LabelAgentRole: ""}
	for key, v := range n.Labels {
		k.Labels[key] = v
	}
	kn := k.Object()
	kn.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	return kn
}
