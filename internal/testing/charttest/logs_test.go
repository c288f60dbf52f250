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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

// podsStandIn answers node, pod and event lists (empty) and watches, recording the permission of
// each call.
func podsStandIn(t *testing.T, rec *Recorder) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rec.Record(r); err != nil {
			t.Errorf("parsing %s: %v", r.URL, err)
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Query().Get("sendInitialEvents") == "true":
			http.Error(w, "sendInitialEvents is not supported", http.StatusBadRequest)
		case r.URL.Query().Get("watch") == "true":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case strings.HasSuffix(r.URL.Path, "/nodes"):
			_ = json.NewEncoder(w).Encode(corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"}})
		case strings.HasSuffix(r.URL.Path, "/pods"):
			_ = json.NewEncoder(w).Encode(corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"}})
		case strings.HasSuffix(r.URL.Path, "/events"):
			_ = json.NewEncoder(w).Encode(corev1.EventList{TypeMeta: metav1.TypeMeta{Kind: "EventList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"}})
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

// runLogsReceiver runs the kubeedge receiver's logs signal following namespaces, and returns
// the pod permissions it used.
func runLogsReceiver(t *testing.T, namespaces ...string) []Permission {
	return runLogsReceiverFor(t, "pods", func(cfg *kubeedgereceiver.Config) { cfg.Logs.Namespaces = namespaces })
}

// runLogsReceiverFor runs the logs signal configured by set and returns the permissions it
// used on the core resource.
func runLogsReceiverFor(t *testing.T, resource string, set func(*kubeedgereceiver.Config)) []Permission {
	rec := NewRecorder()
	kubeconfig := podsStandIn(t, rec)
	f := kubeedgereceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*kubeedgereceiver.Config)
	cfg.Discovery.Kubernetes.AuthType = kube.AuthKubeConfig
	cfg.Discovery.Kubernetes.KubeConfig = kubeconfig
	cfg.Transport.Cloudcore.Endpoints = []string{"127.0.0.1:1"}
	set(cfg)
	r, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	require.Eventually(t, func() bool {
		used := Format(rec.Used())
		return strings.Contains(used, "list core/"+resource) && strings.Contains(used, "watch core/"+resource)
	}, 20*time.Second, 50*time.Millisecond)
	var out []Permission
	for _, p := range rec.Used() {
		if strings.Contains(p.String(), "core/"+resource) {
			out = append(out, p)
		}
	}
	return out
}

// With kubernetesEvents the chart's ClusterRole grants exactly the event reads the receiver
// makes (every namespace); without it there is no such role.
func TestCollectorEventsRBACMatchesCode(t *testing.T) {
	Helm(t)
	used := runLogsReceiverFor(t, "events", func(cfg *kubeedgereceiver.Config) {
		cfg.Logs.LifecycleEvents, cfg.Logs.KubernetesEvents = true, true
	})
	on := []string{"-f", RepoRoot(t) + "/charts/edgetel/ci/logs-values.yaml", "--set", "collector.logs.kubernetesEvents=true"}
	ns, granted := chartRules(t, "ClusterRole", "edgetel-collector-events", on...)
	assert.Empty(t, ns)
	assert.Equal(t, Format(used), Format(granted), "code uses (left) vs chart grants (right)")
	for _, o := range renderObjects(t, "-f", RepoRoot(t)+"/charts/edgetel/ci/logs-values.yaml") {
		assert.NotContains(t, o.Name, "collector-events", "%s %s rendered with kubernetesEvents off", o.GVK.Kind, o.Name)
	}
	_, err := Render(t, append(on, "--set", "collector.logs.lifecycleEvents=false")...)
	require.ErrorContains(t, err, "collector.logs.kubernetesEvents needs collector.logs.lifecycleEvents")
}

// The logs Role (one namespace) or ClusterRole (several, or "*") grants exactly the pod reads
// the receiver makes, in the scope it makes them.
func TestCollectorLogsRBACMatchesCode(t *testing.T) {
	Helm(t)
	on := []string{"-f", RepoRoot(t) + "/charts/edgetel/ci/logs-values.yaml"}
	used := runLogsReceiver(t, "edge-apps")
	ns, granted := chartRules(t, "Role", "edgetel-collector-logs", on...)
	assert.Equal(t, "edge-apps", ns)
	assert.Equal(t, Format(used), Format(granted), "code uses (left) vs chart grants (right)")

	used = runLogsReceiver(t, "edge-apps", "shop")
	ns, granted = chartRules(t, "ClusterRole", "edgetel-collector-logs", append(on, "--set", "collector.logs.namespaces={edge-apps,shop}")...)
	assert.Empty(t, ns)
	assert.Equal(t, Format(used), Format(granted), "code uses (left) vs chart grants (right)")
}

func TestCollectorLogsOffByDefaultAndRefusals(t *testing.T) {
	for _, o := range renderObjects(t) {
		assert.NotContains(t, o.Name, "collector-logs", "%s %s rendered with logs off", o.GVK.Kind, o.Name)
	}
	_, err := Render(t, "--set", "collector.logs.enabled=true", "--set", "collector.logs.namespaces={a}")
	require.ErrorContains(t, err, "collector.logs.endpoint is required")
	_, err = Render(t, "--set", "collector.logs.enabled=true", "--set", "collector.logs.endpoint=http://x", "--set", "collector.logs.lifecycleEvents=false")
	require.ErrorContains(t, err, "collector.logs: list namespaces to follow, or enable lifecycleEvents")
	_, err = Render(t, "--set", "collector.logs.enabled=true", "--set", "collector.logs.endpoint=http://x", "--set", "collector.logs.namespaces={Bad_NS}")
	require.Error(t, err, "the schema refuses a namespace the API server would")
	// Lifecycle records alone read no pods: no logs Role.
	for _, o := range renderObjects(t, "--set", "collector.logs.enabled=true", "--set", "collector.logs.endpoint=http://x") {
		assert.NotContains(t, o.Name, "collector-logs", "%s %s rendered without namespaces", o.GVK.Kind, o.Name)
	}
}
