// Package fleet is edgesim's simulated fleet: the node file it writes (kube.NodeFile, the
// schema the kubeedge receiver's file discovery reads) and its loader. Tests turn its nodes into
// Kubernetes Node objects with KubeNode.
package fleet

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgetel/edgetel/internal/kube"
)

// Node is one simulated edge node, as the fleet file lists it.
type Node = kube.FileNode

// Pod is a pod on a node, as a log reader needs it.
type Pod = kube.Pod

// File is the fleet file's content: a node file (kube.NodeFile), which the kubeedge receiver's
// file discovery reads.
type File = kube.NodeFile

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
