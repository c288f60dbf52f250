// Package nodecache keeps, for each Kubernetes Node, the resource attributes the edgenode
// processor adds to telemetry from that node. A client-go informer feeds it (see Watch); lookups
// read only memory, so no batch ever waits on the API server.
package nodecache

import (
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	corev1 "k8s.io/api/core/v1"
)

// Mapping copies the node label or annotation Key to the resource attribute Attribute.
type Mapping struct {
	Key       string
	Attribute string
}

// Options says which attributes a node yields. An empty attribute name leaves that one out.
type Options struct {
	// NodeNameAttribute receives the node's name (useful when the node was found by IP).
	NodeNameAttribute string
	// NodeGroupAttribute receives the KubeEdge NodeGroup from NodeGroupLabel.
	NodeGroupAttribute string
	NodeGroupLabel     string
	// ReadyAttribute receives the Ready condition: "true", "false" or "unknown".
	ReadyAttribute string
	Labels         []Mapping
	Annotations    []Mapping
}

// Node is the immutable view of one Kubernetes Node; a change replaces the whole value.
type Node struct {
	Name  string
	IPs   []string
	attrs []kv
}

type kv struct{ k, v string }

// Apply writes the node's attributes into m, replacing values already there: the cluster, not
// the sender, is the authority on where a node is.
func (n *Node) Apply(m pcommon.Map) {
	for _, a := range n.attrs {
		m.PutStr(a.k, a.v)
	}
}

// Attributes returns the node's attributes as a map, for tests and logs.
func (n *Node) Attributes() map[string]string {
	out := make(map[string]string, len(n.attrs))
	for _, a := range n.attrs {
		out[a.k] = a.v
	}
	return out
}

// Cache maps node names and addresses to Nodes. It is safe for concurrent use.
type Cache struct {
	opts Options

	mu     sync.RWMutex
	byName map[string]*Node
	byIP   map[string][]string // address → names; an address shared by several nodes is ambiguous
}

// New returns an empty Cache.
func New(opts Options) *Cache {
	return &Cache{opts: opts, byName: make(map[string]*Node), byIP: make(map[string][]string)}
}

// ByName returns the named node, or nil.
func (c *Cache) ByName(name string) *Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byName[name]
}

// ByIP returns the node with that InternalIP or ExternalIP, or nil when none or several have it
// (edge sites often reuse the same private ranges).
func (c *Cache) ByIP(ip string) *Node {
	c.mu.RLock()
	defer c.mu.RUnlock()
	names := c.byIP[ip]
	if len(names) != 1 {
		return nil
	}
	return c.byName[names[0]]
}

// Len is the number of nodes held.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byName)
}

// Upsert records the current state of a Kubernetes Node.
func (c *Cache) Upsert(kn *corev1.Node) {
	n := c.build(kn)
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.byName[n.Name]; old != nil {
		c.unindex(old)
	}
	c.byName[n.Name] = n
	for _, ip := range n.IPs {
		c.byIP[ip] = append(c.byIP[ip], n.Name)
	}
}

// Delete forgets the named node.
func (c *Cache) Delete(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.byName[name]; old != nil {
		c.unindex(old)
		delete(c.byName, name)
	}
}

func (c *Cache) unindex(n *Node) {
	for _, ip := range n.IPs {
		names := slices.DeleteFunc(c.byIP[ip], func(s string) bool { return s == n.Name })
		if len(names) == 0 {
			delete(c.byIP, ip)
		} else {
			c.byIP[ip] = names
		}
	}
}

func (c *Cache) build(kn *corev1.Node) *Node {
	n := &Node{Name: kn.Name}
	for _, a := range kn.Status.Addresses {
		if (a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP) && a.Address != "" &&
			!slices.Contains(n.IPs, a.Address) {
			n.IPs = append(n.IPs, a.Address)
		}
	}
	add := func(k, v string) {
		if k != "" {
			n.attrs = append(n.attrs, kv{k, v})
		}
	}
	add(c.opts.NodeNameAttribute, kn.Name)
	if g, ok := kn.Labels[c.opts.NodeGroupLabel]; ok && c.opts.NodeGroupLabel != "" {
		add(c.opts.NodeGroupAttribute, g)
	}
	add(c.opts.ReadyAttribute, readiness(kn))
	for _, m := range c.opts.Labels {
		if v, ok := kn.Labels[m.Key]; ok {
			add(m.Attribute, v)
		}
	}
	for _, m := range c.opts.Annotations {
		if v, ok := kn.Annotations[m.Key]; ok {
			add(m.Attribute, v)
		}
	}
	return n
}

// readiness follows cloudcore's nodes.IsReadyNode: ready means condition Ready == True. A node
// with no Ready condition yet is unknown.
func readiness(kn *corev1.Node) string {
	for _, c := range kn.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return strings.ToLower(string(c.Status))
		}
	}
	return "unknown"
}
