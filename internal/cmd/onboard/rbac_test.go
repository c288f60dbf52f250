package onboard_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/edgetel/edgetel/internal/cmd/onboard"
	"github.com/edgetel/edgetel/internal/cmd/onboard/agent"
	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/join"
	"github.com/edgetel/edgetel/internal/cmd/onboard/rules"
	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func recorder(t *testing.T, kube *fake.Clientset) record.EventRecorder {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	t.Cleanup(b.Shutdown)
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "edgetel-onboard"})
}

func dynClient() *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{apis.GVR: apis.Kind + "List"})
}

type call struct{ group, resource, verb string }

// apiCall is one recorded request: what and where (namespace and object name, when it has them).
type apiCall struct {
	call
	namespace, name string
}

func calls(actions ...[]k8stesting.Action) []apiCall {
	seen := map[apiCall]bool{}
	for _, list := range actions {
		for _, a := range list {
			res := a.GetResource().Resource
			if a.GetSubresource() != "" {
				res += "/" + a.GetSubresource()
			}
			c := apiCall{call: call{a.GetResource().Group, res, a.GetVerb()}, namespace: a.GetNamespace()}
			switch x := a.(type) {
			case k8stesting.GetAction:
				c.name = x.GetName()
			case k8stesting.UpdateAction:
				if o, ok := x.GetObject().(metav1.Object); ok {
					c.name = o.GetName()
				}
			}
			seen[c] = true
		}
	}
	out := make([]apiCall, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].resource+out[i].verb < out[j].resource+out[j].verb })
	return out
}

// requireCovered checks every cluster-scoped call against the cluster-wide rules and every
// namespaced call against the rules of its namespace only (the chart grants those with Roles, so
// a namespaced call the cluster-wide list happens to cover would fail in a cluster), and that the
// test still makes the calls in mustSee.
func requireCovered(t *testing.T, rbac []rbacv1.PolicyRule, namespaced map[string][]rbacv1.PolicyRule, got []apiCall, mustSee ...call) {
	t.Helper()
	seen := map[call]bool{}
	for _, c := range got {
		seen[c.call] = true
		rules := rbac
		if c.namespace != "" {
			rules = namespaced[c.namespace]
		}
		assert.True(t, onboard.Allows(rules, c.group, c.resource, c.verb, c.name),
			"the code calls %s %q/%s %s/%s, which the RBAC lists lack", c.verb, c.group, c.resource, c.namespace, c.name)
	}
	for _, c := range mustSee {
		assert.True(t, seen[c], "the test no longer exercises %v", c)
	}
}

func TestControllerRBACCoversEveryCall(t *testing.T) {
	kube := fake.NewClientset(
		fleet.Node{Name: "edge-a", IP: "10.20.0.1"}.KubeNode(corev1.ConditionTrue),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: join.CloudcoreConfigMap},
			Data: map[string]string{join.CloudcoreKey: "modules: {cloudHub: {advertiseAddress: [192.168.1.10]}}"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kubeedge", Name: join.TokenSecret},
			Data: map[string][]byte{join.TokenKey: []byte("abc.def.ghi.jkl")}},
		// The chart creates the reservations ConfigMap and the Lease; the controller creates neither.
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "edgetel", Name: "joins"}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "edgetel", Name: "edgetel-onboard"}},
	)
	kube.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		tr.Status.Authenticated, tr.Status.Audiences = true, tr.Spec.Audiences
		tr.Status.User.Groups = []string{"edge-admins"}
		return true, tr, nil
	})
	dyn := dynClient()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	srv, err := join.NewServer(join.Config{Client: kube, Auth: join.TokenReviewer{Client: kube, Audiences: []string{"edgetel-onboard"}}, Logger: quiet,
		Allow:        join.Allowed{Groups: []string{"edge-admins"}},
		Defaults:     join.Settings{Flavor: join.FlavorUpstream, Version: "v1.23.0"},
		Reservations: join.ReservationStore{Client: kube, Namespace: "edgetel", Name: "joins", TTL: time.Hour}})
	require.NoError(t, err)
	for i := 0; i < 2; i++ { // the second request updates the reservation ConfigMap
		req := httptest.NewRequest(http.MethodGet, "/api/v1alpha1/nodes/join?node_name=edge-new&node_ip=10.20.0.9", nil)
		req.Header.Set("Authorization", "Bearer t")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	}

	ctrl, err := rules.NewController(rules.Config{Client: kube, Dynamic: dyn, Recorder: recorder(t, kube), Logger: quiet,
		Model: apis.ModelTunnelPort, KubeEdgeNamespace: "kubeedge", CloudcoreService: "cloudcore", Namespace: "edgetel", Name: "rules"})
	require.NoError(t, err)
	leaderDone := make(chan error, 1)
	go func() {
		leaderDone <- onboard.RunAsLeader(ctx, onboard.LeaderConfig{Client: kube, Namespace: "edgetel", Name: "edgetel-onboard",
			Identity: "pod-0", LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond},
			func(ctx context.Context) { _ = ctrl.Run(ctx) })
	}()
	require.Eventually(t, func() bool {
		u, err := dyn.Resource(apis.GVR).Namespace("edgetel").Get(ctx, "rules", metav1.GetOptions{})
		return err == nil && len(u.Object["status"].(map[string]any)) > 0
	}, 5*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return hasEvent(kube) }, 5*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool { return hasCall(kube, "leases", "update") }, 5*time.Second, 20*time.Millisecond,
		"the leader did not renew its lease")
	cancel()
	require.NoError(t, <-leaderDone)

	requireCovered(t, onboard.RBAC, map[string][]rbacv1.PolicyRule{"kubeedge": onboard.KubeEdgeRBAC, "edgetel": onboard.NamespaceRBAC("joins", "edgetel-onboard")},
		calls(kube.Actions(), dyn.Actions()),
		call{"", "nodes", "list"}, call{"", "nodes", "watch"}, call{"discovery.k8s.io", "endpointslices", "watch"},
		call{"", "configmaps", "get"}, call{"", "configmaps", "watch"}, call{"", "configmaps", "update"},
		call{"", "secrets", "get"}, call{"authentication.k8s.io", "tokenreviews", "create"},
		call{apis.Group, apis.Resource, "create"}, call{apis.Group, apis.Resource, "watch"}, call{apis.Group, apis.Resource + "/status", "update"},
		call{"coordination.k8s.io", "leases", "update"}, call{"", "events", "create"})
}

// hasCall says whether the client has seen verb on resource.
func hasCall(kube *fake.Clientset, resource, verb string) bool {
	for _, a := range kube.Actions() {
		if a.GetResource().Resource == resource && a.GetVerb() == verb {
			return true
		}
	}
	return false
}

func hasEvent(kube *fake.Clientset) bool {
	for _, a := range kube.Actions() {
		if a.GetResource().Resource == "events" {
			return true
		}
	}
	return false
}

func hasAction(actions []k8stesting.Action, verb string) bool {
	for _, a := range actions {
		if a.GetVerb() == verb {
			return true
		}
	}
	return false
}

func TestAgentRBACCoversEveryCall(t *testing.T) {
	client := fake.NewClientset()
	dyn := dynClient()
	u, err := apis.ToUnstructured(&apis.IPTablesRules{ObjectMeta: metav1.ObjectMeta{Namespace: "edgetel", Name: "rules"},
		Spec: apis.Spec{Model: apis.ModelTunnelPort}})
	require.NoError(t, err)
	_, err = dyn.Resource(apis.GVR).Namespace("edgetel").Create(context.Background(), u, metav1.CreateOptions{})
	require.NoError(t, err)
	dyn.ClearActions()
	// "true" stands in for iptables: an empty iptables-save and a restore that succeeds, without
	// touching the host's tables.
	ctx, cancel := context.WithCancel(context.Background())
	cp := &agent.ClusterPolicy{Client: client, KubeEdgeNamespace: "kubeedge", CloudcoreService: "cloudcore", StreamPort: 10003,
		EdgeNodeSelector: kube.DefaultEdgeSelector}
	require.NoError(t, cp.Start(ctx))
	a, err := agent.New(agent.Config{IPTables: agent.IPTables{Mode: "nft", Save: "iptables-nft-save", Restore: "iptables-nft-restore",
		Runner: agent.Runner{Prefix: []string{"true"}}}, NodeName: "master-1", Dynamic: dyn, Namespace: "edgetel", Name: "rules",
		Interval: 50 * time.Millisecond, Recorder: recorder(t, client), Logger: quiet, Policy: cp.Policy})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	require.Eventually(t, func() bool { return hasEvent(client) && hasAction(dyn.Actions(), "patch") }, 5*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	requireCovered(t, onboard.AgentRBAC, map[string][]rbacv1.PolicyRule{"edgetel": onboard.AgentNamespaceRBAC, "kubeedge": onboard.AgentKubeEdgeRBAC},
		calls(client.Actions(), dyn.Actions()),
		call{apis.Group, apis.Resource, "list"}, call{apis.Group, apis.Resource, "watch"}, call{apis.Group, apis.Resource + "/status", "patch"},
		call{"", "events", "create"}, call{"", "nodes", "watch"}, call{"discovery.k8s.io", "endpointslices", "watch"})
}

func TestAllows(t *testing.T) {
	assert.False(t, onboard.Allows(onboard.RBAC, "", "secrets", "get", join.TokenSecret), "no secret cluster-wide")
	for _, res := range []string{"configmaps", "secrets"} {
		assert.False(t, onboard.Allows(append(onboard.RBAC, onboard.AgentRBAC...), "", res, "get", "x"), "no %s cluster-wide", res)
	}
	assert.False(t, onboard.Allows(onboard.RBAC, "coordination.k8s.io", "leases", "update", "kube-scheduler"), "no leases cluster-wide")
	assert.True(t, onboard.Allows(onboard.KubeEdgeRBAC, "", "secrets", "get", join.TokenSecret))
	assert.False(t, onboard.Allows(onboard.KubeEdgeRBAC, "", "secrets", "get", "other"))
	assert.False(t, onboard.Allows(onboard.KubeEdgeRBAC, "", "secrets", "list", ""))
	assert.False(t, onboard.Allows(onboard.AgentRBAC, apis.Group, apis.Resource, "update", ""))
	assert.Equal(t, join.TokenSecret, onboard.TokenSecret)
}
