package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	listersdiscoveryv1 "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
	"github.com/edgetel/edgetel/internal/cmd/onboard/rules"
	"github.com/edgetel/edgetel/internal/kube"
)

// ClusterPolicy keeps the agent's DNAT policy current: its targets are cloudcore's ready
// endpoints as the Service's EndpointSlices list them, and the addresses of every node that is
// not an edge node are never matched. The agent reads these itself rather than trusting the
// IPTablesRules object.
type ClusterPolicy struct {
	Client            kubernetes.Interface
	KubeEdgeNamespace string
	CloudcoreService  string
	StreamPort        int
	// EdgeNodeSelector selects edge nodes; empty is kube.DefaultEdgeSelector, never every node
	// (which would leave no cloud node's address protected).
	EdgeNodeSelector string
	// Base holds the operator's port range and forbidden ranges (Service CIDR, API server VIPs).
	Base policy.Policy

	edge   labels.Selector
	nodes  listerscorev1.NodeLister
	slices listersdiscoveryv1.EndpointSliceLister
}

// Start runs the informers until ctx ends and waits for their first list.
func (c *ClusterPolicy) Start(ctx context.Context) error {
	if c.EdgeNodeSelector == "" {
		c.EdgeNodeSelector = kube.DefaultEdgeSelector
	}
	sel, err := labels.Parse(c.EdgeNodeSelector)
	if err != nil {
		return fmt.Errorf("agent: edge node selector: %w", err)
	}
	c.edge = sel
	nodeF := informers.NewSharedInformerFactory(c.Client, 0)
	sliceF := informers.NewSharedInformerFactoryWithOptions(c.Client, 0, informers.WithNamespace(c.KubeEdgeNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=" + c.CloudcoreService
		}))
	nodeInf, sliceInf := nodeF.Core().V1().Nodes(), sliceF.Discovery().V1().EndpointSlices()
	c.nodes, c.slices = nodeInf.Lister(), sliceInf.Lister()
	synced := []cache.InformerSynced{nodeInf.Informer().HasSynced, sliceInf.Informer().HasSynced}
	nodeF.Start(ctx.Done())
	sliceF.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("agent: node and cloudcore caches did not sync: %w", ctx.Err())
	}
	return nil
}

// Policy is the policy from the informers' current view.
func (c *ClusterPolicy) Policy() policy.Policy {
	nodes, _ := c.nodes.List(labels.Everything())
	slices, _ := c.slices.EndpointSlices(c.KubeEdgeNamespace).List(labels.Everything())
	return policy.Build(c.Base, rules.Targets(rules.CloudcoresFromSlices(slices, c.StreamPort)), nodes,
		func(n *corev1.Node) bool { return c.edge.Matches(labels.Set(n.Labels)) })
}

// HostAddresses are the addresses of this host's interfaces: the agent runs with host
// networking on the API server's hosts, so these include the API server's own.
func HostAddresses() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("agent: listing this host's addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				ip = ip.Unmap()
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
	return out, nil
}
