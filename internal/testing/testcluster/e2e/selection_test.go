package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/rules"
	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

// selectionNodes are Nodes with every mix of the edge role label the selectors must agree on;
// true marks the ones cloudcore tunnels (IsEdgeNode: the label with an empty value).
var selectionNodes = []struct {
	name   string
	labels map[string]string
	ready  corev1.ConditionStatus
	edge   bool
}{
	{"sel-edge-ready", map[string]string{kube.LabelEdgeRole: "", kube.LabelAgentRole: ""}, corev1.ConditionTrue, true},
	{"sel-edge-not-ready", map[string]string{kube.LabelEdgeRole: ""}, corev1.ConditionFalse, true},
	{"sel-edge-unknown", map[string]string{kube.LabelEdgeRole: ""}, corev1.ConditionUnknown, true},
	{"sel-edge-valued", map[string]string{kube.LabelEdgeRole: "true"}, corev1.ConditionTrue, false},
	{"sel-agent-only", map[string]string{kube.LabelAgentRole: ""}, corev1.ConditionTrue, false},
	{"sel-no-role", map[string]string{"kubernetes.io/os": "linux"}, corev1.ConditionTrue, false},
	{"sel-control-plane", map[string]string{"node-role.kubernetes.io/control-plane": ""}, corev1.ConditionTrue, false},
}

// TestOnboardingAndCollectorSelectTheSameNodes puts Nodes with mixed role labels into a real API
// server and checks that the collector's discovery (the receiver's and the processor's default
// selector, through the shared Node informer) and the onboarding controller (its default
// selector, matched against every Node) both pick exactly the ones cloudcore tunnels.
func TestOnboardingAndCollectorSelectTheSameNodes(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	admin, err := kubernetes.NewForConfig(c.Admin)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(c.Admin)
	require.NoError(t, err)
	var want []string
	for i, n := range selectionNodes {
		createNode(t, admin, n.name, n.labels, fmt.Sprintf("10.251.0.%d", i+1), n.ready)
		if n.edge {
			want = append(want, n.name)
		}
	}
	slices.Sort(want)

	// The collector: both components' defaults, on one shared informer.
	rcfg := kubeedgereceiver.NewFactory().CreateDefaultConfig().(*kubeedgereceiver.Config)
	pcfg := edgenodeprocessor.NewFactory().CreateDefaultConfig().(*edgenodeprocessor.Config)
	require.Equal(t, rcfg.Discovery.Kubernetes.LabelSelector, pcfg.NodeSelector, "the receiver and the processor select edge nodes differently")
	kubeconfig := kubeconfigFor(t, c, "edgetel-collector")
	reg := kube.NewRegistry(kube.NewClient)
	nodes, err := reg.AcquireNodes(kube.NodeWatch{
		API:      kube.APIConfig{AuthType: kube.AuthKubeConfig, KubeConfig: kubeconfig},
		Selector: rcfg.Discovery.Kubernetes.LabelSelector,
	})
	require.NoError(t, err)
	t.Cleanup(nodes.Release)
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.True(t, nodes.WaitForSync(waitCtx), "node informer did not sync")
	collector := func() []string {
		var names []string
		for _, n := range nodes.List() {
			if strings.HasPrefix(n.Name, "sel-") {
				names = append(names, n.Name)
			}
		}
		return names
	}

	// The onboarding controller: one rule per edge node it selects (edgeIP model, one cloudcore).
	const kubeedgeNS, crName = "kubeedge-selection", "selection"
	require.NoError(t, c.EnsureNamespace(ctx, kubeedgeNS))
	_, err = admin.DiscoveryV1().EndpointSlices(kubeedgeNS).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "cloudcore", Labels: map[string]string{discoveryv1.LabelServiceName: "cloudcore"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.252.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	ctrl, err := rules.NewController(rules.Config{Client: admin, Dynamic: dyn, Model: apis.ModelEdgeIP,
		KubeEdgeNamespace: kubeedgeNS, CloudcoreService: "cloudcore", Namespace: Namespace, Name: crName})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ctrl.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
		_ = dyn.Resource(apis.GVR).Namespace(Namespace).Delete(context.Background(), crName, metav1.DeleteOptions{})
	})
	onboarding := func() []string {
		u, err := dyn.Resource(apis.GVR).Namespace(Namespace).Get(ctx, crName, metav1.GetOptions{})
		if err != nil {
			return nil
		}
		obj, err := apis.FromUnstructured(u)
		require.NoError(t, err)
		var names []string
		for _, r := range obj.Spec.Rules {
			if strings.HasPrefix(r.Node, "sel-") {
				names = append(names, r.Node)
			}
		}
		slices.Sort(names)
		return names
	}

	var gotCollector, gotOnboarding []string
	ok := assert.Eventually(t, func() bool {
		gotCollector, gotOnboarding = collector(), onboarding()
		return slices.Equal(gotCollector, want) && slices.Equal(gotOnboarding, want)
	}, 30*time.Second, 100*time.Millisecond)
	require.True(t, ok, "want %v; the collector selects %v, the onboarding controller %v", want, gotCollector, gotOnboarding)
}

func createNode(t *testing.T, client kubernetes.Interface, name string, labels map[string]string, ip string, ready corev1.ConditionStatus) {
	t.Helper()
	ctx := context.Background()
	nodes := client.CoreV1().Nodes()
	n, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = nodes.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	n.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: kube.DefaultKubeletPort}},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
	}
	_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
	require.NoError(t, err)
}
