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

	"github.com/edgetel/edgetel/internal/edgesim"
	"github.com/edgetel/edgetel/internal/kube"
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
