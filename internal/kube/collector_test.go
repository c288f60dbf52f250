package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver"
)

// apiServer is the part of a Kubernetes API server a collector uses: listing and watching Nodes
// (with client-go's streaming list, sendInitialEvents, or a plain list) and the node proxy. It
// counts the Node watches opened.
type apiServer struct {
	*httptest.Server
	node *corev1.Node

	mu      sync.Mutex
	watches int
}

func newAPIServer(t *testing.T, node *corev1.Node) *apiServer {
	a := &apiServer{node: node}
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *apiServer) watchCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.watches
}

func (a *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/v1/nodes":
	case "/api/v1/nodes/" + a.node.Name + "/proxy/metrics":
		fmt.Fprintln(w, "# TYPE edge_temp_celsius gauge\nedge_temp_celsius 40")
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	node := *a.node
	node.TypeMeta = metav1.TypeMeta{Kind: "Node", APIVersion: "v1"}
	node.ResourceVersion = "1"
	if r.URL.Query().Get("watch") != "true" {
		_ = json.NewEncoder(w).Encode(corev1.NodeList{
			TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: "1"},
			Items:    []corev1.Node{node},
		})
		return
	}
	a.mu.Lock()
	a.watches++
	a.mu.Unlock()
	enc := json.NewEncoder(w)
	if r.URL.Query().Get("sendInitialEvents") == "true" {
		_ = enc.Encode(map[string]any{"type": "ADDED", "object": node})
		_ = enc.Encode(map[string]any{"type": "BOOKMARK", "object": corev1.Node{
			TypeMeta: node.TypeMeta,
			ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1",
				Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}},
		}})
	}
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

func kubeconfig(t *testing.T, server string) string {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "`+server+`"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t}}]
current-context: c
`), 0o600))
	return path
}

// A collector with the kubeedge receiver and the edgenode processor, both on the same API
// config and their default selector, opens one Node watch, and both see the node through it. Built
// from the real factories, so the process-wide kube.Shared registry is what is tested.
func TestOneNodeInformerPerCollector(t *testing.T) {
	node := kube.Node{Name: "edge-1", IP: "10.0.0.1", Ready: kube.ReadyTrue,
		Labels: map[string]string{kube.LabelEdgeRole: "", kube.LabelRegion: "eu"}}.Object()
	api := newAPIServer(t, node)
	access := kube.APIConfig{AuthType: kube.AuthKubeConfig, KubeConfig: kubeconfig(t, api.URL)}
	ctx := context.Background()
	host := componenttest.NewNopHost()

	rf := kubeedgereceiver.NewFactory()
	rcfg := rf.CreateDefaultConfig().(*kubeedgereceiver.Config)
	rcfg.CollectionInterval, rcfg.ScrapeTimeout = 200*time.Millisecond, 200*time.Millisecond
	rcfg.Endpoints.Cadvisor.Enabled, rcfg.Endpoints.Resource.Enabled = false, false
	rcfg.Discovery.Kubernetes.APIConfig = access
	rcfg.Transport.Mode = kubeedgereceiver.TransportAPIServer
	rcfg.Transport.APIServer.APIConfig = access
	require.NoError(t, rcfg.Validate())
	scraped := new(consumertest.MetricsSink)
	rcv, err := rf.CreateMetrics(ctx, receivertest.NewNopSettings(rf.Type()), rcfg, scraped)
	require.NoError(t, err)

	pf := edgenodeprocessor.NewFactory()
	pcfg := pf.CreateDefaultConfig().(*edgenodeprocessor.Config)
	pcfg.APIConfig = access
	pcfg.WaitForMetadata = true
	require.NoError(t, pcfg.Validate())
	enriched := new(consumertest.MetricsSink)
	proc, err := pf.CreateMetrics(ctx, processortest.NewNopSettings(pf.Type()), pcfg, enriched)
	require.NoError(t, err)

	start := func(cs ...component.Component) {
		for _, c := range cs {
			require.NoError(t, c.Start(ctx, host))
		}
	}
	stop := func(cs ...component.Component) {
		for _, c := range cs {
			require.NoError(t, c.Shutdown(ctx))
		}
	}
	start(rcv, proc)
	// The receiver scrapes the node it discovered...
	require.Eventually(t, func() bool { return len(scraped.AllMetrics()) > 0 }, 10*time.Second, 20*time.Millisecond)
	// ...and the processor enriches from the same cache.
	md := pmetric.NewMetrics()
	md.ResourceMetrics().AppendEmpty().Resource().Attributes().PutStr("k8s.node.name", "edge-1")
	require.NoError(t, proc.ConsumeMetrics(ctx, md))
	region, _ := enriched.AllMetrics()[0].ResourceMetrics().At(0).Resource().Attributes().Get("region")
	assert.Equal(t, "eu", region.Str())
	assert.Equal(t, 1, api.watchCount(), "one Node watch for the receiver and the processor")

	// Stopped and started again, as on a config reload: the informer stopped with its last holder,
	// and the restart opens exactly one new watch.
	stop(rcv, proc)
	rcv, err = rf.CreateMetrics(ctx, receivertest.NewNopSettings(rf.Type()), rcfg, scraped)
	require.NoError(t, err)
	proc, err = pf.CreateMetrics(ctx, processortest.NewNopSettings(pf.Type()), pcfg, enriched)
	require.NoError(t, err)
	start(proc, rcv)
	assert.Equal(t, 2, api.watchCount())
	stop(proc, rcv)
}
