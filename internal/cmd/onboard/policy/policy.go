// Package policy says which DNAT rules are acceptable on an API server's host. Both the rules
// controller (before it turns Node status into rules) and the rules agent (before it writes
// them as root) check every rule against it: an edge node's report of its own address and port
// is not to be trusted, and neither is whoever can write the IPTablesRules object.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
)

// DefaultPorts is the kubelet/tunnel port range edge nodes use: edgecore's 10350 and cloudcore's
// negotiated tunnel ports, 10351 and up (kubeedge.md §1.4). It stays clear of 6443, 10250 (the
// kubelet), 10257 and 10259 (controller-manager, scheduler) and 2379-2380 (etcd).
const DefaultPorts = "10350-10999"

// Reasons label the refusals in metrics.
const (
	ReasonMalformed  = "malformed"
	ReasonEmptyMatch = "empty_match"
	ReasonAddress    = "match_address"
	ReasonPort       = "match_port"
	ReasonTarget     = "target"
)

// Error is one refused rule and why.
type Error struct {
	Reason string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// Reason returns the refusal reason of err, or ReasonMalformed when err is no *Error.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonMalformed
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi int }

// ParsePorts reads "10350-10999,12000".
func ParsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || l < 1 || h > 65535 || l > h {
			return nil, fmt.Errorf("port range %q: want N or N-M within 1-65535", part)
		}
		out = append(out, PortRange{l, h})
	}
	return out, nil
}

// ParsePrefixes reads comma-separated CIDRs or addresses (an address is its /32 or /128).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if a, err := netip.ParseAddr(part); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("%q: not a CIDR or an IP address", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Forbidden is an address range a rule may never match, with what it is for the message.
type Forbidden struct {
	Prefix netip.Prefix
	What   string
}

// Policy is what a rule may do: match one edge address (never a host, Service or control-plane
// address) on a port of Ports, and send it to one of Targets.
type Policy struct {
	// Targets are cloudcore's ready stream endpoints, the only DNAT destinations.
	Targets []netip.AddrPort
	// Ports are the ports a rule may match (the kubelet/tunnel range).
	Ports []PortRange
	// Forbidden are the API server's addresses, the Service CIDR and cloud nodes' addresses.
	Forbidden []Forbidden
}

// Forbid adds prefixes under one description.
func (p *Policy) Forbid(what string, prefixes ...netip.Prefix) {
	for _, pr := range prefixes {
		p.Forbidden = append(p.Forbidden, Forbidden{Prefix: pr, What: what})
	}
}

// ForbidCloudNodes forbids the addresses of every node that is not an edge node.
func (p *Policy) ForbidCloudNodes(nodes []*corev1.Node, isEdge func(*corev1.Node) bool) {
	for _, n := range nodes {
		if isEdge(n) {
			continue
		}
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil {
				ip = ip.Unmap()
				p.Forbid("the address of cloud node "+n.Name, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
	}
}

// ForbidPodCIDRs forbids every node's pod CIDRs (spec.podCIDRs): a rule matching a pod's
// address would redirect the API server's traffic to that pod (webhooks, aggregated APIs).
func (p *Policy) ForbidPodCIDRs(nodes []*corev1.Node) {
	for _, n := range nodes {
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			if pr, err := netip.ParsePrefix(c); err == nil {
				p.Forbid("the pod CIDR of node "+n.Name, pr.Masked())
			}
		}
	}
}

// ForbidSharedAddresses forbids an InternalIP two or more edge nodes claim: a node reports its
// own addresses, so one edge node could claim another's and take its kubelet traffic. Neither
// gets a rule until only one claims it.
func (p *Policy) ForbidSharedAddresses(nodes []*corev1.Node, isEdge func(*corev1.Node) bool) {
	claims := map[netip.Addr][]string{}
	for _, n := range nodes {
		if !isEdge(n) {
			continue
		}
		seen := map[netip.Addr]bool{}
		for _, a := range n.Status.Addresses {
			ip, err := netip.ParseAddr(a.Address)
			if a.Type != corev1.NodeInternalIP || err != nil || seen[ip.Unmap()] {
				continue
			}
			seen[ip.Unmap()] = true
			claims[ip.Unmap()] = append(claims[ip.Unmap()], n.Name)
		}
	}
	for ip, names := range claims {
		if len(names) > 1 {
			sort.Strings(names)
			p.Forbid("claimed by several edge nodes ("+strings.Join(names, ", ")+")", netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
}

// CheckMatch refuses an address and port a rule must not match.
func (p Policy) CheckMatch(ip netip.Addr, port int) error {
	if !ip.IsValid() {
		return &Error{ReasonEmptyMatch, "a rule must match one edge node address: an empty match would redirect every destination"}
	}
	ip = ip.Unmap()
	if err := special(ip); err != "" {
		return &Error{ReasonAddress, fmt.Sprintf("match address %s is %s", ip, err)}
	}
	for _, t := range p.Targets {
		if t.Addr() == ip {
			return &Error{ReasonAddress, fmt.Sprintf("match address %s is a cloudcore endpoint", ip)}
		}
	}
	for _, f := range p.Forbidden {
		if f.Prefix.Contains(ip) {
			return &Error{ReasonAddress, fmt.Sprintf("match address %s is %s (%s)", ip, f.What, f.Prefix)}
		}
	}
	for _, r := range p.Ports {
		if port >= r.Lo && port <= r.Hi {
			return nil
		}
	}
	return &Error{ReasonPort, fmt.Sprintf("match port %d is outside the kubelet/tunnel ports %s", port, FormatPorts(p.Ports))}
}

// CheckTarget refuses a DNAT destination that is not a ready cloudcore stream endpoint.
func (p Policy) CheckTarget(to netip.AddrPort) error {
	if err := special(to.Addr().Unmap()); err != "" {
		return &Error{ReasonTarget, fmt.Sprintf("target %s is %s", to, err)}
	}
	for _, t := range p.Targets {
		if t == to {
			return nil
		}
	}
	return &Error{ReasonTarget, fmt.Sprintf("target %s is not a ready cloudcore stream endpoint (%s)", to, p.targets())}
}

// Check parses a rule's addresses and ports and checks both ends.
func (p Policy) Check(r apis.Rule) error {
	var match netip.Addr
	if r.SourceIP != "" {
		a, err := netip.ParseAddr(r.SourceIP)
		if err != nil {
			return &Error{ReasonMalformed, fmt.Sprintf("source_ip %q is not an IP address", r.SourceIP)}
		}
		match = a
	}
	port, err := strconv.Atoi(r.SourcePort)
	if err != nil {
		return &Error{ReasonMalformed, fmt.Sprintf("source_port %q is not a port", r.SourcePort)}
	}
	if err := p.CheckMatch(match, port); err != nil {
		return err
	}
	to, err := netip.ParseAddrPort(r.DestinationIP + ":" + r.DestinationPort)
	if err != nil {
		return &Error{ReasonMalformed, fmt.Sprintf("destination %s:%s is not an address and port", r.DestinationIP, r.DestinationPort)}
	}
	return p.CheckTarget(to)
}

// special names what makes ip unusable on either end of a DNAT rule, or "".
func special(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case ip.IsUnspecified():
		return "unspecified"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	return ""
}

func (p Policy) targets() string {
	if len(p.Targets) == 0 {
		return "there is none"
	}
	s := make([]string, len(p.Targets))
	for i, t := range p.Targets {
		s[i] = t.String()
	}
	sort.Strings(s)
	return "they are " + strings.Join(s, ", ")
}

// FormatPorts prints ranges as ParsePorts reads them.
func FormatPorts(rs []PortRange) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		if r.Lo == r.Hi {
			s[i] = strconv.Itoa(r.Lo)
		} else {
			s[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return strings.Join(s, ",")
}

// Build is base plus what the cluster says: cloudcore's ready stream endpoints are the targets;
// the addresses of every node isEdge rejects, every node's pod CIDRs and an InternalIP several
// edge nodes claim are never matched.
func Build(base Policy, targets []netip.AddrPort, nodes []*corev1.Node, isEdge func(*corev1.Node) bool) Policy {
	p := Policy{Ports: base.Ports, Targets: append([]netip.AddrPort(nil), targets...),
		Forbidden: append([]Forbidden(nil), base.Forbidden...)}
	p.Targets = append(p.Targets, base.Targets...)
	p.ForbidCloudNodes(nodes, isEdge)
	p.ForbidPodCIDRs(nodes)
	p.ForbidSharedAddresses(nodes, isEdge)
	return p
}
