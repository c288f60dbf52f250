// Package rules computes the DNAT rules the API server's hosts need so that connections to an
// edge node's kubelet endpoint reach cloudcore's stream server, and keeps them in an
// IPTablesRules custom resource.
package rules

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
	"github.com/edgetel/edgetel/internal/cmd/onboard/policy"
	"github.com/edgetel/edgetel/internal/kube"
)

// KubeEdge's names (docs/kubeedge.md §1, §3).
const (
	TunnelPortConfigMap  = "tunnelport"
	TunnelPortAnnotation = "tunnelportrecord.kubeedge.io"
	// StreamPortName is the cloudcore Service port that carries the stream server.
	StreamPortName    = "cloudstream"
	DefaultStreamPort = 10003
	// Chain is the nat chain the agent owns; rules in the CR name it.
	Chain = "EDGETEL-ONBOARD"
)

// TunnelPortRecord is cloudcore's annotation value: which cloudcore IP owns which port.
type TunnelPortRecord struct {
	IPTunnelPort map[string]int `json:"ipTunnelPort"`
	Port         map[int]bool   `json:"port"`
}

// ParseTunnelPortRecord reads the annotation of the tunnelport ConfigMap; a missing ConfigMap
// or annotation is an empty record.
func ParseTunnelPortRecord(cm *corev1.ConfigMap) (TunnelPortRecord, error) {
	var rec TunnelPortRecord
	if cm == nil || cm.Annotations[TunnelPortAnnotation] == "" {
		return rec, nil
	}
	if err := json.Unmarshal([]byte(cm.Annotations[TunnelPortAnnotation]), &rec); err != nil {
		return rec, fmt.Errorf("annotation %s of ConfigMap %s/%s: %w", TunnelPortAnnotation, cm.Namespace, cm.Name, err)
	}
	return rec, nil
}

// Cloudcore is one ready cloudcore replica as its EndpointSlices show it.
type Cloudcore struct {
	IP         string
	StreamPort int
}

// CloudcoresFromSlices lists the ready cloudcore endpoints (IPv4 only, as iptables here is),
// sorted by IP so every pass picks the same one.
func CloudcoresFromSlices(slices []*discoveryv1.EndpointSlice, defaultStreamPort int) []Cloudcore {
	seen := map[string]Cloudcore{}
	for _, s := range slices {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		port := defaultStreamPort
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == StreamPortName && p.Port != nil {
				port = int(*p.Port)
			}
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				seen[a] = Cloudcore{IP: a, StreamPort: port}
			}
		}
	}
	out := make([]Cloudcore, 0, len(seen))
	for _, c := range seen {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}

// Targets turns cloudcore replicas into the DNAT policy's targets.
func Targets(ccs []Cloudcore) []netip.AddrPort {
	var out []netip.AddrPort
	for _, c := range ccs {
		if a, err := netip.ParseAddr(c.IP); err == nil && validPort(c.StreamPort) {
			out = append(out, netip.AddrPortFrom(a, uint16(c.StreamPort)))
		}
	}
	return out
}

// Input is the cluster state one computation reads.
type Input struct {
	Model apis.Model
	// Nodes are the edge nodes; CloudNodes every other node, whose addresses no rule may match.
	Nodes      []*corev1.Node
	CloudNodes []*corev1.Node
	Cloudcores []Cloudcore
	Record     TunnelPortRecord
	// Policy holds the operator's part of the DNAT policy (port range, forbidden ranges);
	// Desired adds cloudcore's endpoints and the cloud nodes' addresses.
	Policy policy.Policy
}

// Result is the desired rules plus what could not be turned into a rule, for the status.
type Result struct {
	Rules    []apis.Rule
	Problems []string
	// Refused counts the rules the DNAT policy refused (they are also in Problems).
	Refused int
}

// Desired computes the rules for in.Model. It is a pure function of its input, so the
// controller's sync is level-triggered: the same cluster state always gives the same rules.
// A rule derived from what a Node reports about itself that breaks the DNAT policy is refused.
func Desired(in Input) (Result, error) {
	var res Result
	switch in.Model {
	case apis.ModelEdgeIP:
		res = edgeIPRules(in)
	case apis.ModelTunnelPort:
		res = tunnelPortRules(in)
	default:
		return Result{}, fmt.Errorf("unknown rules model %q (want %s or %s)", in.Model, apis.ModelEdgeIP, apis.ModelTunnelPort)
	}
	base := in.Policy
	if len(base.Ports) == 0 {
		base.Ports, _ = policy.ParsePorts(policy.DefaultPorts)
	}
	edge := map[*corev1.Node]bool{}
	for _, n := range in.Nodes {
		edge[n] = true
	}
	all := append(append([]*corev1.Node(nil), in.CloudNodes...), in.Nodes...)
	pol := policy.Build(base, Targets(in.Cloudcores), all, func(n *corev1.Node) bool { return edge[n] })
	kept := res.Rules[:0]
	for _, r := range res.Rules {
		if err := pol.Check(r); err != nil {
			res.Refused++
			res.Problems = append(res.Problems, fmt.Sprintf("node %s: refused by the DNAT policy: %v", r.Node, err))
			continue
		}
		kept = append(kept, r)
	}
	res.Rules = kept
	return res, nil
}

func dnat(sourceIP string, port int, cc Cloudcore) apis.Rule {
	return apis.Rule{
		Table: "nat", Chain: Chain, Jump: "DNAT", Protocol: "tcp",
		SourceIP: sourceIP, SourcePort: strconv.Itoa(port),
		DestinationIP: cc.IP, DestinationPort: strconv.Itoa(cc.StreamPort),
	}
}

// tunnelPortRules gives one rule per edge node whose kubelet port is the tunnel port of a
// cloudcore that is both recorded in the tunnelport annotation and currently a ready endpoint:
// a record left behind by a vanished cloudcore would otherwise send its nodes' traffic into
// nowhere. KubeEdge's own rules match the port alone; these also match the node's address, so
// no rule redirects every destination on a port.
func tunnelPortRules(in Input) Result {
	var res Result
	ready := map[string]Cloudcore{}
	for _, c := range in.Cloudcores {
		ready[c.IP] = c
	}
	ips := make([]string, 0, len(in.Record.IPTunnelPort))
	for ip := range in.Record.IPTunnelPort {
		ips = append(ips, ip)
	}
	sort.Strings(ips)
	byPort := map[int]Cloudcore{}
	for _, ip := range ips {
		port := in.Record.IPTunnelPort[ip]
		cc, ok := ready[ip]
		switch {
		case !validPort(port):
			res.Problems = append(res.Problems, fmt.Sprintf("tunnel record %s: port %d out of range", ip, port))
		case !ok:
			res.Problems = append(res.Problems, fmt.Sprintf("tunnel record %s:%d: no ready cloudcore endpoint with that IP", ip, port))
		default:
			byPort[port] = cc
		}
	}
	if len(in.Cloudcores) == 0 {
		res.Problems = append(res.Problems, "no ready cloudcore endpoint")
		return res
	}
	res.nodeRules(in.Nodes, byPort, nil)
	return res
}

// nodeRules adds a rule for each node with an IPv4 InternalIP to the cloudcore its kubelet port
// names, or to fallback when no cloudcore does; without a fallback such a node is a problem.
func (res *Result) nodeRules(nodes []*corev1.Node, byPort map[int]Cloudcore, fallback *Cloudcore) {
	for _, n := range sortedNodes(nodes) {
		ip, ok := internalIPv4(n)
		if !ok {
			res.Problems = append(res.Problems, fmt.Sprintf("node %s: no IPv4 InternalIP", n.Name))
			continue
		}
		port := kube.FromKube(n).Port()
		cc, ok := byPort[port]
		switch {
		case !ok && fallback == nil:
			res.Problems = append(res.Problems, fmt.Sprintf("node %s: kubelet port %d is no ready cloudcore's tunnel port", n.Name, port))
			continue
		case !ok:
			cc = *fallback
		}
		r := dnat(ip, port, cc)
		r.Node = n.Name
		res.Rules = append(res.Rules, r)
	}
}

func sortedNodes(nodes []*corev1.Node) []*corev1.Node {
	out := append([]*corev1.Node(nil), nodes...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// edgeIPRules gives one rule per edge node: its InternalIP and kubelet port, to the cloudcore
// holding the node's tunnel (the record entry whose port equals the node's kubelet port), or
// to the first ready cloudcore when the record does not say.
func edgeIPRules(in Input) Result {
	var res Result
	if len(in.Cloudcores) == 0 {
		res.Problems = append(res.Problems, "no ready cloudcore endpoint")
		return res
	}
	byPort := map[int]Cloudcore{}
	ready := map[string]Cloudcore{}
	for _, c := range in.Cloudcores {
		ready[c.IP] = c
	}
	for ip, port := range in.Record.IPTunnelPort {
		if c, ok := ready[ip]; ok {
			byPort[port] = c
		}
	}
	res.nodeRules(in.Nodes, byPort, &in.Cloudcores[0])
	return res
}

func internalIPv4(n *corev1.Node) (string, bool) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
			return ip.String(), true
		}
	}
	return "", false
}

func validPort(p int) bool { return p > 0 && p < 65536 }
