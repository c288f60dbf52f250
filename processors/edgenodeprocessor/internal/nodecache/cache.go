// Package nodecache keeps, for each edge node, the resource attributes the edgenode processor
// adds to telemetry from that node. The shared node informer of internal/kube feeds it; lookups
// read only memory, so no batch ever waits on the API server.
package nodecache

import (
	"slices"
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/edgetel/edgetel/internal/kube"
)

// Options says which attributes a node yields. An empty attribute name leaves that one out.
type Options struct {
	// NodeNameAttribute receives the node's name (useful when the node was found by IP).
	NodeNameAttribute string
	// NodeGroupAttribute receives the KubeEdge NodeGroup from NodeGroupLabel.
	NodeGroupAttribute string
	NodeGroupLabel     string
	// ReadyAttribute receives the Ready condition: "true", "false" or "unknown".
	ReadyAttribute string
	Labels         []kube.LabelMapping
	Annotations    []kube.LabelMapping
}

// Entry is the immutable set of attributes of one node; a change replaces the whole value.
type Entry struct {
	Name  string
	IPs   []string
	attrs []kv
}

type kv struct{ k, v string }

// Apply writes the node's attributes into m, replacing values already there: the cluster, not
// the sender, is the authority on where a node is.
func (n *Entry) Apply(m pcommon.Map) {
	for _, a := range n.attrs {
		m.PutStr(a.k, a.v)
	}
}

// Attributes returns the node's attributes as a map, for tests and logs.
func (n *Entry) Attributes() map[string]string {
	out := make(map[string]string, len(n.attrs))
	for _, a := range n.attrs {
		out[a.k] = a.v
	}
	return out
}

// Cache maps node names and addresses to Entries. It is safe for concurrent use.
type Cache struct {
	opts Options

	mu     sync.RWMutex
	byName map[string]*Entry
	byIP   map[string][]string // address → names; an address shared by several nodes is ambiguous
}

// New returns an empty Cache.
func New(opts Options) *Cache {
	return &Cache{opts: opts, byName: make(map[string]*Entry), byIP: make(map[string][]string)}
}

// ByName returns the named node, or nil.
func (c *Cache) ByName(name string) *Entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byName[name]
}

// ByIP returns the node with that InternalIP or ExternalIP, or nil when none or several have it
// (edge sites often reuse the same private ranges).
func (c *Cache) ByIP(ip string) *Entry {
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

// Upsert records the current state of a node.
func (c *Cache) Upsert(kn kube.Node) {
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

func (c *Cache) unindex(n *Entry) {
	for _, ip := range n.IPs {
		names := slices.DeleteFunc(c.byIP[ip], func(s string) bool { return s == n.Name })
		if len(names) == 0 {
			delete(c.byIP, ip)
		} else {
			c.byIP[ip] = names
		}
	}
}

func (c *Cache) build(kn kube.Node) *Entry {
	n := &Entry{Name: kn.Name, IPs: kn.Addresses}
	add := func(k, v string) {
		if k != "" {
			n.attrs = append(n.attrs, kv{k, v})
		}
	}
	add(c.opts.NodeNameAttribute, kn.Name)
	if g, ok := kn.Labels[c.opts.NodeGroupLabel]; ok && c.opts.NodeGroupLabel != "" {
		add(c.opts.NodeGroupAttribute, g)
	}
	add(c.opts.ReadyAttribute, string(kn.Ready))
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
