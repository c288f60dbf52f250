package agent

import (
	"context"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
	"github.com/edgetel/edgetel/internal/kube"
)

// Without a selector the agent takes edge nodes as the collector and cloudcore do: a node whose
// edge role label has a value, or that has none, is a cloud node whose address no rule may match.
func TestClusterPolicyDefaultsToTheEdgeSelector(t *testing.T) {
	edge := kube.FileNode{Name: "edge-1", IP: "10.20.0.1"}.KubeNode(corev1.ConditionTrue)
	valued := kube.FileNode{Name: "valued", IP: "10.20.0.2"}.KubeNode(corev1.ConditionTrue)
	valued.Labels[kube.LabelEdgeRole] = "true"
	cloud := kube.Node{Name: "cloud-1", IP: "10.0.0.1", Ready: kube.ReadyTrue}.Object()
	ports, err := policy.ParsePorts(policy.DefaultPorts)
	require.NoError(t, err)
	cp := &ClusterPolicy{Client: fake.NewClientset(edge, valued, cloud), KubeEdgeNamespace: "kubeedge",
		CloudcoreService: "cloudcore", StreamPort: 10003, Base: policy.Policy{Ports: ports}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, cp.Start(ctx))
	assert.Equal(t, kube.DefaultEdgeSelector, cp.EdgeNodeSelector)

	p := cp.Policy()
	assert.NoError(t, p.CheckMatch(netip.MustParseAddr("10.20.0.1"), kube.DefaultKubeletPort), "an edge node")
	assert.Error(t, p.CheckMatch(netip.MustParseAddr("10.20.0.2"), kube.DefaultKubeletPort), "edge role with a value: not tunnelled by cloudcore")
	assert.Error(t, p.CheckMatch(netip.MustParseAddr("10.0.0.1"), kube.DefaultKubeletPort), "a cloud node")
}
