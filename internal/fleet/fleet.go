// Package fleet is the model of a KubeEdge edge fleet shared by edgesim (which writes it), the
// kubeedge receiver's file discovery (which reads it) and the tests that turn it into Kubernetes
// Node objects for client-go's fake clientset.
package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// Well-known node labels of a KubeEdge fleet.
const (
	// LabelEdgeRole marks an edge node; KubeEdge requires it present with an empty value.
	LabelEdgeRole = "node-role.kubernetes.io/edge"
	// LabelAgentRole is set by edged next to LabelEdgeRole.
	LabelAgentRole = "node-role.kubernetes.io/agent"
	// LabelRegion and LabelSite are the standard topology labels, used for region and site.
	LabelRegion = "topology.kubernetes.io/region"
	LabelSite   = "topology.kubernetes.io/zone"
	// LabelNodeGroup is the label KubeEdge's NodeGroup controller puts on its members.
	LabelNodeGroup = "apps.kubeedge.io/belonging-to"
)

// DefaultKubeletPort is edged's read-only port, and the port cloudcore's stream server expects in Host.
const DefaultKubeletPort = 10350

// Node is one edge node as discovery sees it.
type Node struct {
	Name string `json:"name"`
	// IP is the node's InternalIP. Through cloudcore it only travels in the Host header.
	IP string `json:"ip"`
	// Port is status.daemonEndpoints.kubeletEndpoint.Port.
	Port   int               `json:"port"`
	Labels map[string]string `json:"labels,omitempty"`
	// Direct is host:port where this node's kubelet endpoints answer directly (edgesim's
	// per-node direct mode); empty when the node is only reachable through cloudcore.
	Direct string `json:"direct,omitempty"`
}

// Address is what cloudcore's stream server takes from the Host header: <nodeIP>:<port>.
func (n Node) Address() string {
	port := n.Port
	if port == 0 {
		port = DefaultKubeletPort
	}
	return net.JoinHostPort(n.IP, strconv.Itoa(port))
}

// Validate reports the first field that makes the node unusable.
func (n Node) Validate() error {
	if n.Name == "" {
		return errors.New("node without a name")
	}
	if net.ParseIP(n.IP) == nil {
		return fmt.Errorf("node %q: ip %q is not an IP address", n.Name, n.IP)
	}
	if n.Port < 0 || n.Port > 65535 {
		return fmt.Errorf("node %q: port %d out of range", n.Name, n.Port)
	}
	return nil
}

// File is the fleet file's content.
type File struct {
	Nodes []Node `json:"nodes"`
}

// Load reads and validates a fleet file.
func Load(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("reading fleet file: %w", err)
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return File{}, fmt.Errorf("parsing fleet file %s: %w", path, err)
	}
	seen := make(map[string]bool, len(f.Nodes))
	for _, n := range f.Nodes {
		if err := n.Validate(); err != nil {
			return File{}, fmt.Errorf("fleet file %s: %w", path, err)
		}
		if seen[n.Name] {
			return File{}, fmt.Errorf("fleet file %s: node %q listed twice", path, n.Name)
		}
		seen[n.Name] = true
	}
	return f, nil
}

// Save writes the fleet file atomically, so a reader never sees half of it.
func Save(path string, f File) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding fleet: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fleet-*")
	if err != nil {
		return fmt.Errorf("writing fleet file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing fleet file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing fleet file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing fleet file: %w", err)
	}
	return nil
}
