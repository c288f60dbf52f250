// Package fleet is edgesim's model of its simulated fleet: what it writes to its fleet file
// (which the kubeedge receiver's file discovery reads as a node file) and what tests turn into
// Kubernetes Node objects. The Direct field is the simulator's own; everything else converts
// into edgetel's one Node type, kube.Node.
package fleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgetel/edgetel/internal/kube"
)

// Node is one simulated edge node, as the fleet file lists it.
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
	// Ready is the node's Ready condition as a file reader is to take it ("true", "false",
	// "unknown"); empty is true.
	Ready string `json:"ready,omitempty"`
	// Pods are the node's pods whose container logs a reader may follow (edgesim's log pods).
	Pods []Pod `json:"pods,omitempty"`
}

// Pod is a pod on a node, as a log reader needs it.
type Pod struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	Containers []string          `json:"containers"`
}

// Kube is n as edgetel's Node, Ready.
func (n Node) Kube() kube.Node {
	return kube.Node{Name: n.Name, IP: n.IP, Addresses: []string{n.IP}, KubeletPort: n.Port,
		Ready: kube.ReadyTrue, Labels: n.Labels}
}

// Address is what cloudcore's stream server takes from the Host header: <nodeIP>:<port>.
func (n Node) Address() string { return n.Kube().Address() }

// Validate reports the first field that makes the node unusable.
func (n Node) Validate() error { return n.Kube().Validate() }

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
