package kubeedgereceiver

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/testing/edgesim"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// cloudcoreSlice is an EndpointSlice of Service kubeedge/cloudcore holding one replica at addr.
func cloudcoreSlice(t *testing.T, name, addr string, ready bool) *discoveryv1.EndpointSlice {
	host, portText, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(portText)
	require.NoError(t, err)
	p, portName := int32(port), "cloudstream"
	other, otherName := int32(10004), "tunnelport"
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "kubeedge", Labels: map[string]string{discoveryv1.LabelServiceName: "cloudcore"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &otherName, Port: &other}, {Name: &portName, Port: &p}},
	}
}

// The cloudcore replicas are followed through the Service's EndpointSlices: a replica that
// becomes ready is asked, so the nodes whose tunnels it holds are scraped.
func TestCloudcoreEndpointsFollowTheService(t *testing.T) {
	s, fleetFile := startHASim(t, 2, 2, edgesim.LogsConfig{})
	addrs := s.Addrs()
	nodes := s.Fleet().Nodes
	require.Equal(t, 1, s.TunnelOwner(nodes[1].Name))
	client := fake.NewClientset(cloudcoreSlice(t, "cloudcore-a", addrs[0], true), cloudcoreSlice(t, "cloudcore-b", addrs[1], false))
	reg := kube.NewRegistry(func(kube.APIConfig) (kubernetes.Interface, error) { return client, nil })
	cfg := haConfig(s, fleetFile, 300*time.Millisecond)
	cfg.Endpoints.Metrics.Enabled, cfg.Endpoints.Cadvisor.Enabled = false, false
	cfg.Transport.Cloudcore.Endpoints = nil
	cfg.Transport.Cloudcore.Service.Name = "cloudcore"
	require.NoError(t, cfg.Validate())
	sink := new(consumertest.MetricsSink)
	r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, sink, reg)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), nil))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	const path = "/metrics/resource"
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, nodes[0].Name), path) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(batches(sink, nodes[1].Name)) >= 2 }, 10*time.Second, 10*time.Millisecond)
	require.Zero(t, upOf(lastBatch(sink, nodes[1].Name), path), "its replica is not ready, so not asked")

	ready := cloudcoreSlice(t, "cloudcore-b", addrs[1], true)
	_, err = client.DiscoveryV1().EndpointSlices("kubeedge").Update(context.Background(), ready, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return upOf(lastBatch(sink, nodes[1].Name), path) == 1 }, 10*time.Second, 10*time.Millisecond)
}
