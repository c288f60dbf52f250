package charttest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgetel/edgetel/internal/cmd/onboard"
	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

// apiServerStandIn answers the calls the collector makes (node list and watch, node proxy) and
// records the permission each one needs.
func apiServerStandIn(t *testing.T, rec *Recorder) string {
	node := fleet.Node{Name: "edge-1", IP: "10.30.0.1", Port: kube.DefaultKubeletPort}.KubeNode(corev1.ConditionTrue)
	node.ResourceVersion = "1"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rec.Record(r); err != nil {
			t.Errorf("parsing %s: %v", r.URL, err)
		}
		switch {
		case strings.Contains(r.URL.Path, "/proxy/"):
			_, _ = w.Write([]byte("# TYPE edge_up gauge\nedge_up 1\n"))
		case r.URL.Query().Get("sendInitialEvents") == "true":
			// Like an API server without streaming lists: client-go falls back to list + watch.
			http.Error(w, "sendInitialEvents is not supported", http.StatusBadRequest)
		case r.URL.Query().Get("watch") == "true":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case r.URL.Path == "/api/v1/nodes":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(corev1.NodeList{
				TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"}, Items: []corev1.Node{*node},
			})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: t, cluster: {server: `+srv.URL+`}}]
users: [{name: t, user: {token: test}}]
contexts: [{name: t, context: {cluster: t, user: t}}]
current-context: t
`), 0o600))
	return kubeconfig
}

// runCollectorReceiver runs the kubeedge receiver as the chart configures it, against the stand-in.
func runCollectorReceiver(t *testing.T, transport string) []Permission {
	rec := NewRecorder()
	kubeconfig := apiServerStandIn(t, rec)
	f := kubeedgereceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*kubeedgereceiver.Config)
	cfg.CollectionInterval = 200 * time.Millisecond
	cfg.Discovery.Kubernetes.AuthType = kube.AuthKubeConfig
	cfg.Discovery.Kubernetes.KubeConfig = kubeconfig
	cfg.Transport.Mode = transport
	cfg.Transport.Cloudcore.Endpoints = []string{"127.0.0.1:1"}
	cfg.Transport.APIServer.AuthType = kube.AuthKubeConfig
	cfg.Transport.APIServer.KubeConfig = kubeconfig
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	wantProxy := transport == kubeedgereceiver.TransportAPIServer
	require.Eventually(t, func() bool {
		used := Format(rec.Used())
		return strings.Contains(used, "list core/nodes") && strings.Contains(used, "watch core/nodes") && (!wantProxy || strings.Contains(used, "nodes/proxy"))
	}, 20*time.Second, 50*time.Millisecond)
	return rec.Used()
}

func chartRole(t *testing.T, name string, args ...string) []Permission {
	_, granted := chartRules(t, "ClusterRole", name, args...)
	return granted
}

// chartRules returns the namespace (empty for a ClusterRole) and the grants of the rendered
// ClusterRole or Role called name.
func chartRules(t *testing.T, kind, name string, args ...string) (string, []Permission) {
	out, err := Render(t, args...)
	require.NoError(t, err)
	objs, err := DecodeAll(out)
	require.NoError(t, err)
	for _, o := range objs {
		var ns string
		var rules []rbacv1.PolicyRule
		switch r := o.Obj.(type) {
		case *rbacv1.ClusterRole:
			if kind != "ClusterRole" || r.Name != name {
				continue
			}
			rules = r.Rules
		case *rbacv1.Role:
			if kind != "Role" || r.Name != name {
				continue
			}
			ns, rules = r.Namespace, r.Rules
		default:
			continue
		}
		granted, err := Granted(rules)
		require.NoError(t, err)
		return ns, granted
	}
	t.Fatalf("%s %s not rendered", kind, name)
	return "", nil
}

// The collector's ClusterRole grants exactly what the receiver's informer and transport use.
func TestCollectorRBACMatchesCode(t *testing.T) {
	Helm(t)
	for _, transport := range []string{kubeedgereceiver.TransportCloudcore, kubeedgereceiver.TransportAPIServer} {
		t.Run(transport, func(t *testing.T) {
			used := runCollectorReceiver(t, transport)
			args := []string{"--set", "collector.transport=" + transport}
			if transport == kubeedgereceiver.TransportAPIServer {
				// The stand-in's one edge node, named as the chart requires.
				args = append(args, "--set", "collector.apiserver.nodeNames={edge-1}", "--set", apiServerCIDRs)
			}
			granted := chartRole(t, "edgetel-collector", args...)
			if transport == kubeedgereceiver.TransportAPIServer {
				// The recorder does not see names: the proxy rule names the edge node only.
				assert.Contains(t, Format(granted), "get core/nodes/proxy edge-1\n")
				for i := range granted {
					granted[i].Name = ""
				}
			}
			assert.Equal(t, Format(used), Format(granted), "code uses (left) vs chart grants (right)")
		})
	}
}

// The onboarding roles grant exactly the lists that internal/cmd/onboard's tests check every call of
// the controller and the agent against, each in the scope the code uses it in.
func TestOnboardRBACMatchesCode(t *testing.T) {
	Helm(t)
	on := []string{"-f", RepoRoot(t) + "/examples/onboarding/values.yaml", "--set", "onboard.kubeedgeNamespace=edge-system"}
	for _, tc := range []struct {
		kind, name, ns string
		rules          []rbacv1.PolicyRule
	}{
		{"ClusterRole", "edgetel-onboard-controller", "", onboard.RBAC},
		{"Role", "edgetel-onboard-controller", "edgetel", onboard.NamespaceRBAC("edgetel-onboard-controller-joins", "edgetel-onboard-controller")},
		{"Role", "edgetel-onboard-controller-kubeedge", "edge-system", onboard.KubeEdgeRBAC},
		{"ClusterRole", "edgetel-onboard-agent", "", onboard.AgentRBAC},
		{"Role", "edgetel-onboard-agent", "edgetel", onboard.AgentNamespaceRBAC},
		{"Role", "edgetel-onboard-agent-kubeedge", "edge-system", onboard.AgentKubeEdgeRBAC},
	} {
		t.Run(tc.kind+"/"+tc.name, func(t *testing.T) {
			used, err := Granted(tc.rules)
			require.NoError(t, err)
			ns, granted := chartRules(t, tc.kind, tc.name, on...)
			assert.Equal(t, tc.ns, ns)
			assert.Equal(t, Format(used), Format(granted), "code uses (left) vs chart grants (right)")
		})
	}
}

// apiServerCIDRs is the API server's address the chart needs with transport apiserver (the
// collector's egress is fenced to it).
const apiServerCIDRs = "collector.networkPolicy.apiServerCIDRs={10.96.0.1/32}"

// The apiserver transport grants kubelet read access through the node proxy: the chart renders
// it only for the edge nodes listed, or for every node when that is asked for explicitly.
func TestAPIServerTransportNamesItsNodes(t *testing.T) {
	_, err := Render(t, "--set", "collector.transport=apiserver", "--set", apiServerCIDRs)
	require.ErrorContains(t, err, "collector.apiserver.nodeNames")
	granted := Format(chartRole(t, "edgetel-collector", "--set", "collector.transport=apiserver", "--set", apiServerCIDRs,
		"--set", "collector.apiserver.nodeNames={edge-a,edge-b}"))
	assert.Contains(t, granted, "get core/nodes/proxy edge-a\nget core/nodes/proxy edge-b\n")
	assert.NotContains(t, granted, "get core/nodes/proxy\n")
	granted = Format(chartRole(t, "edgetel-collector", "--set", "collector.transport=apiserver", "--set", apiServerCIDRs,
		"--set", "collector.apiserver.allNodes=true"))
	assert.Contains(t, granted, "get core/nodes/proxy\n")
	assert.NotContains(t, Format(chartRole(t, "edgetel-collector")), "nodes/proxy", "the default transport, cloudcore, needs none")
}
