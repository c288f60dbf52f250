package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

const (
	ns     = "edgetel"
	crName = "edgetel-onboard"
)

type harness struct {
	kube *fake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
	ctrl *Controller
}

func newHarness(t *testing.T, model apis.Model, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{
		kube: fake.NewClientset(objs...),
		dyn: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{apis.GVR: apis.Kind + "List"}),
	}
	pol := policy.Policy{}
	pol.Forbid("a forbidden range", netip.MustParsePrefix("10.96.0.0/12"))
	c, err := NewController(Config{
		Client: h.kube, Dynamic: h.dyn, Model: model, KubeEdgeNamespace: "kubeedge",
		CloudcoreService: "cloudcore", Namespace: ns, Name: crName, Policy: pol,
	})
	require.NoError(t, err)
	h.ctrl = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return h
}

// rulesEventually waits until the CR's rules equal want, and returns the object.
func (h *harness) rulesEventually(t *testing.T, want []apis.Rule) *apis.IPTablesRules {
	t.Helper()
	var got *apis.IPTablesRules
	require.Eventually(t, func() bool {
		u, err := h.dyn.Resource(apis.GVR).Namespace(ns).Get(context.Background(), crName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		got, err = apis.FromUnstructured(u)
		require.NoError(t, err)
		return assert.ObjectsAreEqual(nonNil(want), got.Spec.Rules)
	}, 5*time.Second, 10*time.Millisecond, "want rules %v, last seen %+v", want, got)
	return got
}

func node(name, ip string, port int) *corev1.Node {
	return fleet.Node{Name: name, IP: ip, Port: port}.KubeNode(corev1.ConditionTrue)
}

func slice(name string, streamPort int32, ready map[string]bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: "cloudcore"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("cloudhub"), Port: ptr.To[int32](10000)},
			{Name: ptr.To(StreamPortName), Port: ptr.To(streamPort)},
		},
	}
	for ip, ok := range ready {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ok)}})
	}
	return s
}

func tunnelCM(t *testing.T, rec map[string]int) *corev1.ConfigMap {
	t.Helper()
	ports := map[int]bool{}
	for _, p := range rec {
		ports[p] = true
	}
	b, err := json.Marshal(TunnelPortRecord{IPTunnelPort: rec, Port: ports})
	require.NoError(t, err)
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: TunnelPortConfigMap,
		Annotations: map[string]string{TunnelPortAnnotation: string(b)}}}
}

func tp(port int, ccIP string, streamPort int) apis.Rule {
	return apis.Rule{Table: "nat", Chain: Chain, Jump: "DNAT", Protocol: "tcp", SourcePort: fmt.Sprint(port),
		DestinationIP: ccIP, DestinationPort: fmt.Sprint(streamPort)}
}

func eip(nodeName, ip string, port int, ccIP string) apis.Rule {
	r := tp(port, ccIP, 10003)
	r.SourceIP, r.Node = ip, nodeName
	return r
}

func TestTunnelPortModelFollowsRecordAndEndpoints(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, apis.ModelTunnelPort,
		node("edge-a", "10.20.0.1", 10351), node("edge-b", "10.20.0.2", 10352), node("edge-c", "10.20.0.3", 10353),
		slice("cloudcore-a", 10003, map[string]bool{"10.0.0.5": true, "10.0.0.6": true}),
		tunnelCM(t, map[string]int{"10.0.0.5": 10351, "10.0.0.6": 10352}),
	)
	a, b, c := eip("edge-a", "10.20.0.1", 10351, "10.0.0.5"), eip("edge-b", "10.20.0.2", 10352, "10.0.0.6"), eip("edge-c", "10.20.0.3", 10353, "10.0.0.7")
	obj := h.rulesEventually(t, []apis.Rule{a, b})
	assert.Equal(t, apis.ModelTunnelPort, obj.Spec.Model)

	// A third replica joins: it registers its port, then becomes a ready endpoint.
	cm := tunnelCM(t, map[string]int{"10.0.0.5": 10351, "10.0.0.6": 10352, "10.0.0.7": 10353})
	_, err := h.kube.CoreV1().ConfigMaps("kubeedge").Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	_, err = h.kube.DiscoveryV1().EndpointSlices("kubeedge").Create(ctx, slice("cloudcore-b", 10003, map[string]bool{"10.0.0.7": true}), metav1.CreateOptions{})
	require.NoError(t, err)
	h.rulesEventually(t, []apis.Rule{a, b, c})
	require.Eventually(t, func() bool { return testutil.ToFloat64(h.ctrl.desired) == 3 }, 5*time.Second, 10*time.Millisecond)
	assert.GreaterOrEqual(t, testutil.ToFloat64(h.ctrl.syncs.WithLabelValues("ok")), 2.0)

	// A replica stops being ready: its rule goes, and Degraded says why.
	_, err = h.kube.DiscoveryV1().EndpointSlices("kubeedge").Update(ctx,
		slice("cloudcore-a", 10003, map[string]bool{"10.0.0.5": true, "10.0.0.6": false}), metav1.UpdateOptions{})
	require.NoError(t, err)
	obj = h.rulesEventually(t, []apis.Rule{a, c})
	require.Eventually(t, func() bool {
		obj = h.get(t)
		c := meta.FindStatusCondition(obj.Status.Conditions, apis.ConditionDegraded)
		return c != nil && c.Status == metav1.ConditionTrue
	}, 5*time.Second, 10*time.Millisecond)
	assert.Contains(t, meta.FindStatusCondition(obj.Status.Conditions, apis.ConditionDegraded).Message, "10.0.0.6:10352")
	assert.True(t, meta.IsStatusConditionTrue(obj.Status.Conditions, apis.ConditionReady))

	// A broken record keeps the rules that work and says so.
	cm.Annotations[TunnelPortAnnotation] = `{"ipTunnelPort":`
	_, err = h.kube.CoreV1().ConfigMaps("kubeedge").Update(ctx, cm, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		obj = h.get(t)
		return meta.IsStatusConditionFalse(obj.Status.Conditions, apis.ConditionReady)
	}, 5*time.Second, 10*time.Millisecond)
	assert.Len(t, obj.Spec.Rules, 2)
	assert.Contains(t, meta.FindStatusCondition(obj.Status.Conditions, apis.ConditionReady).Reason, "BadTunnelPortRecord")

	// The record disappears altogether: no rules.
	require.NoError(t, h.kube.CoreV1().ConfigMaps("kubeedge").Delete(ctx, TunnelPortConfigMap, metav1.DeleteOptions{}))
	h.rulesEventually(t, nil)
}

func TestEdgeIPModelFollowsNodes(t *testing.T) {
	ctx := context.Background()
	cloud := node("master-1", "192.168.1.1", 10250)
	delete(cloud.Labels, kube.LabelEdgeRole)
	h := newHarness(t, apis.ModelEdgeIP, cloud,
		node("edge-a", "10.20.0.1", 10351), node("edge-b", "10.20.0.2", 10352),
		slice("cloudcore-a", 10003, map[string]bool{"10.0.0.5": true, "10.0.0.6": true}),
		tunnelCM(t, map[string]int{"10.0.0.5": 10351, "10.0.0.6": 10352}),
	)
	// Each node goes to the cloudcore holding its tunnel; the cloud node gets no rule.
	h.rulesEventually(t, []apis.Rule{eip("edge-a", "10.20.0.1", 10351, "10.0.0.5"), eip("edge-b", "10.20.0.2", 10352, "10.0.0.6")})

	// A new node that has not connected a tunnel yet (port 10350) goes to the first cloudcore.
	_, err := h.kube.CoreV1().Nodes().Create(ctx, node("edge-c", "10.20.0.3", 0), metav1.CreateOptions{})
	require.NoError(t, err)
	h.rulesEventually(t, []apis.Rule{eip("edge-a", "10.20.0.1", 10351, "10.0.0.5"), eip("edge-b", "10.20.0.2", 10352, "10.0.0.6"),
		eip("edge-c", "10.20.0.3", 10350, "10.0.0.5")})

	// Its tunnel connects to the second cloudcore and its IP changes.
	_, err = h.kube.CoreV1().Nodes().Update(ctx, node("edge-c", "10.20.0.33", 10352), metav1.UpdateOptions{})
	require.NoError(t, err)
	h.rulesEventually(t, []apis.Rule{eip("edge-a", "10.20.0.1", 10351, "10.0.0.5"), eip("edge-b", "10.20.0.2", 10352, "10.0.0.6"),
		eip("edge-c", "10.20.0.33", 10352, "10.0.0.6")})

	// The second cloudcore goes away: its nodes fall back to the first.
	_, err = h.kube.DiscoveryV1().EndpointSlices("kubeedge").Update(ctx,
		slice("cloudcore-a", 10003, map[string]bool{"10.0.0.5": true}), metav1.UpdateOptions{})
	require.NoError(t, err)
	h.rulesEventually(t, []apis.Rule{eip("edge-a", "10.20.0.1", 10351, "10.0.0.5"), eip("edge-b", "10.20.0.2", 10352, "10.0.0.5"),
		eip("edge-c", "10.20.0.33", 10352, "10.0.0.5")})

	require.NoError(t, h.kube.CoreV1().Nodes().Delete(ctx, "edge-b", metav1.DeleteOptions{}))
	h.rulesEventually(t, []apis.Rule{eip("edge-a", "10.20.0.1", 10351, "10.0.0.5"), eip("edge-c", "10.20.0.33", 10352, "10.0.0.5")})
}

func TestControllerRestoresEditedAndDeletedObject(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, apis.ModelTunnelPort, node("edge-a", "10.20.0.1", 10351),
		slice("cloudcore-a", 10003, map[string]bool{"10.0.0.5": true}),
		tunnelCM(t, map[string]int{"10.0.0.5": 10351}))
	want := []apis.Rule{eip("edge-a", "10.20.0.1", 10351, "10.0.0.5")}
	obj := h.rulesEventually(t, want)

	obj.Spec.Rules = []apis.Rule{tp(10351, "6.6.6.6", 10003)}
	u, err := apis.ToUnstructured(obj)
	require.NoError(t, err)
	_, err = h.dyn.Resource(apis.GVR).Namespace(ns).Update(ctx, u, metav1.UpdateOptions{})
	require.NoError(t, err)
	h.rulesEventually(t, want)

	require.NoError(t, h.dyn.Resource(apis.GVR).Namespace(ns).Delete(ctx, crName, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		_, err := h.dyn.Resource(apis.GVR).Namespace(ns).Get(ctx, crName, metav1.GetOptions{})
		return !apierrors.IsNotFound(err)
	}, 5*time.Second, 10*time.Millisecond)
	h.rulesEventually(t, want)
}

// Edge nodes write their own status: the controller refuses rules from a node that reports a
// loopback, control-plane, cloudcore or Service address, or a port outside the kubelet range,
// says so in Degraded and in a metric, and keeps the honest nodes' rules.
func TestControllerRefusesHostileNodeStatus(t *testing.T) {
	cloud := node("master-1", "192.168.1.1", 10250)
	delete(cloud.Labels, kube.LabelEdgeRole)
	h := newHarness(t, apis.ModelEdgeIP, cloud,
		node("edge-a", "10.20.0.1", 10351),
		node("evil-loopback", "127.0.0.1", 10350),
		node("evil-apiserver", "192.168.1.1", 10350),
		node("evil-6443", "10.20.0.9", 6443),
		node("evil-cloudcore", "10.0.0.5", 10350),
		node("evil-service", "10.96.0.1", 10350),
		slice("cloudcore-a", 10003, map[string]bool{"10.0.0.5": true}),
	)
	obj := h.rulesEventually(t, []apis.Rule{eip("edge-a", "10.20.0.1", 10351, "10.0.0.5")})
	require.Eventually(t, func() bool {
		obj = h.get(t)
		return meta.IsStatusConditionTrue(obj.Status.Conditions, apis.ConditionDegraded)
	}, 5*time.Second, 10*time.Millisecond)
	msg := meta.FindStatusCondition(obj.Status.Conditions, apis.ConditionDegraded).Message
	for _, want := range []string{"evil-loopback: refused by the DNAT policy: match address 127.0.0.1 is loopback",
		"evil-apiserver: refused by the DNAT policy: match address 192.168.1.1 is the address of cloud node master-1",
		"evil-6443: refused by the DNAT policy: match port 6443 is outside the kubelet/tunnel ports 10350-10999",
		"evil-cloudcore: refused by the DNAT policy: match address 10.0.0.5 is a cloudcore endpoint",
		"evil-service: refused by the DNAT policy: match address 10.96.0.1 is a forbidden range"} {
		assert.Contains(t, msg, want)
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(h.ctrl.refused) == 5 }, 5*time.Second, 10*time.Millisecond)
}

func (h *harness) get(t *testing.T) *apis.IPTablesRules {
	t.Helper()
	u, err := h.dyn.Resource(apis.GVR).Namespace(ns).Get(context.Background(), crName, metav1.GetOptions{})
	require.NoError(t, err)
	obj, err := apis.FromUnstructured(u)
	require.NoError(t, err)
	return obj
}

func TestNewControllerRejectsBadConfig(t *testing.T) {
	base := func() Config {
		return Config{Client: fake.NewClientset(), Dynamic: dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()),
			Model: apis.ModelEdgeIP, KubeEdgeNamespace: "kubeedge", CloudcoreService: "cloudcore", Namespace: ns, Name: crName}
	}
	for name, mutate := range map[string]func(*Config){
		"model":      func(c *Config) { c.Model = "both" },
		"port":       func(c *Config) { c.StreamPort = 70000 },
		"selector":   func(c *Config) { c.EdgeNodeSelector = "a b c" },
		"no name":    func(c *Config) { c.Name = "" },
		"no clients": func(c *Config) { c.Client = nil },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base()
			mutate(&cfg)
			_, err := NewController(cfg)
			require.Error(t, err)
		})
	}
	_, err := NewController(base())
	require.NoError(t, err)
}
