package kubeedgereceiver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

func kubePod(ns, name, node string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{edgesim.PodLabel: "edgesim"}},
		Spec: corev1.PodSpec{NodeName: node}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "busybox"})
	}
	return p
}

// With discovery.mode kubernetes the pods come from a shared Pod informer: bound pods of the
// followed namespace are followed, a deleted pod's streams stop, other namespaces are not read.
func TestLogsPodsFromKubernetes(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{PodsPerNode: 2, ContainersPerPod: 1, Rate: 50})
	f := s.Fleet()
	client := fake.NewClientset(f.Nodes[0].KubeNode(corev1.ConditionTrue), f.Nodes[1].KubeNode(corev1.ConditionTrue),
		kubePod("edge-apps", "edge-00001-app-0", "edge-00001", "c0"),
		kubePod("edge-apps", "edge-00002-app-1", "edge-00002", "c0"),
		kubePod("edge-apps", "unbound", "", "c0"),
		kubePod("other", "edge-00001-app-1", "edge-00001", "c0"))
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	cfg := logsConfig(s, fleetFile)
	cfg.Discovery.Mode = DiscoveryKubernetes
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.MustNewIDWithName("kubeedge", "kube")
	sink := new(consumertest.LogsSink)
	r, err := newLogsReceiver(set, cfg, sink, reg)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	streams := func() map[string]bool {
		out := map[string]bool{}
		for _, rec := range records(sink) {
			out[rec.stream] = true
		}
		return out
	}
	require.Eventually(t, func() bool { return len(streams()) == 2 }, 20*time.Second, 10*time.Millisecond)
	assert.True(t, streams()["edge-apps/edge-00001-app-0/c0"])
	assert.True(t, streams()["edge-apps/edge-00002-app-1/c0"])

	require.NoError(t, client.CoreV1().Pods("edge-apps").Delete(context.Background(), "edge-00002-app-1", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.followers) == 1
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	assert.Len(t, checkExactlyOnce(t, s, records(sink), false), 2)
}

// With logs.kubernetes_events, Kubernetes Events about the shard's edge nodes become lifecycle
// records with the node's attributes: a Node's own Event and one its kubelet reported on a pod.
// Events about other nodes, and those already there at the start, do not.
func TestLifecycleKubernetesEvents(t *testing.T) {
	noLeaks(t)
	s, fleetFile := startLogSim(t, 2, edgesim.LogsConfig{})
	f := s.Fleet()
	old := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "old"},
		InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "edge-00001"}, Reason: "Rebooted", Type: corev1.EventTypeWarning}
	client := fake.NewClientset(f.Nodes[0].KubeNode(corev1.ConditionTrue), f.Nodes[1].KubeNode(corev1.ConditionTrue), old)
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	cfg := logsConfig(s, fleetFile)
	cfg.Discovery.Mode = DiscoveryKubernetes
	cfg.Logs.Namespaces = nil
	cfg.Logs.LifecycleEvents = true
	cfg.Logs.KubernetesEvents = true
	set := receivertest.NewNopSettings(metadata.Type)
	sink := new(consumertest.LogsSink)
	r, err := newLogsReceiver(set, cfg, sink, reg)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	// The nodes are known (the baseline snapshot) before the Events come.
	require.Eventually(t, func() bool {
		r.life.mu.Lock()
		defer r.life.mu.Unlock()
		return len(r.life.targets) == 2
	}, 20*time.Second, 10*time.Millisecond)

	for _, e := range []*corev1.Event{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "pressure"}, InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "edge-00002"},
			Reason: "NodeHasDiskPressure", Message: "disk pressure", Type: corev1.EventTypeNormal, Count: 1},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "edge-apps", Name: "evicted"}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "edge-apps", Name: "app-0"},
			Reason: "Evicted", Message: "The node was low on resource: memory.", Type: corev1.EventTypeWarning, Count: 1,
			Source: corev1.EventSource{Component: "kubelet", Host: "edge-00001"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "elsewhere"}, InvolvedObject: corev1.ObjectReference{Kind: "Node", Name: "cloud-1"},
			Reason: "Rebooted", Type: corev1.EventTypeWarning},
	} {
		_, err := client.CoreV1().Events(e.Namespace).Create(context.Background(), e, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	got := map[string]map[string]any{}
	require.Eventually(t, func() bool {
		for _, ld := range sink.AllLogs() {
			for i := range ld.ResourceLogs().Len() {
				rl := ld.ResourceLogs().At(i)
				rec := rl.ScopeLogs().At(0).LogRecords().At(0)
				if rec.EventName() != eventKubernetes {
					continue
				}
				attrs := rec.Attributes().AsRaw()
				node, _ := rl.Resource().Attributes().Get("k8s.node.name")
				site, _ := rl.Resource().Attributes().Get("site")
				attrs["node"], attrs["site"], attrs["severity"], attrs["body"] = node.Str(), site.Str(), rec.SeverityText(), rec.Body().Str()
				got[attrs["k8s.event.name"].(string)] = attrs
			}
		}
		return len(got) >= 2
	}, 20*time.Second, 10*time.Millisecond)
	assert.Len(t, got, 2, "only the new Events about the shard's nodes: %v", keys(got))
	assert.Equal(t, "edge-00002", got["pressure"]["node"])
	assert.Equal(t, "INFO", got["pressure"]["severity"])
	assert.Equal(t, map[string]any{"event.name": eventKubernetes, "k8s.event.name": "evicted", "k8s.event.reason": "Evicted",
		"k8s.event.count": int64(1), "k8s.namespace.name": "edge-apps", "k8s.object.kind": "Pod", "k8s.object.name": "app-0",
		"node": "edge-00001", "site": f.Nodes[0].Labels[kube.LabelSite], "severity": "WARN", "body": "The node was low on resource: memory."},
		got["evicted"])
}

func TestKubernetesEventsNeedKubernetesDiscovery(t *testing.T) {
	s, fleetFile := startLogSim(t, 1, edgesim.LogsConfig{})
	cfg := logsConfig(s, fleetFile) // discovery.mode file
	cfg.Logs.LifecycleEvents, cfg.Logs.KubernetesEvents = true, true
	_, err := newLogsReceiver(receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop(), nil)
	assert.ErrorContains(t, err, "logs.kubernetes_events needs")
}
