// Package captures holds the real kubelet captures that edgesim serves and the tests parse,
// embedded so that every binary and test finds them without a path. SOURCES.md beside this file
// says where each capture comes from and under which licence.
package captures

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File names of the captures (in the kubelet/ directory).
const (
	Cadvisor = "metrics-cadvisor-1.35.txt" // /metrics/cadvisor, Kubernetes 1.35
	Resource = "metrics-resource-1.35.txt" // /metrics/resource, derived from Summary
	Kubelet  = "metrics-kubelet-1.21.txt"  // the kubelet's own /metrics, Kubernetes 1.21
	Summary  = "stats-summary-1.35.json"   // /stats/summary, Kubernetes 1.35
)

// EnvDir names a directory of one's own captures that replaces the embedded ones.
const EnvDir = "EDGETEL_FIXTURES"

//go:embed kubelet
var embedded embed.FS

// FS is the kubelet captures: dir when it is not empty (the directory holding the capture files,
// or its parent holding kubelet/), else $EDGETEL_FIXTURES when set, else the embedded copies.
func FS(dir string) (fs.FS, error) {
	if dir == "" {
		dir = os.Getenv(EnvDir)
	}
	if dir == "" {
		sub, err := fs.Sub(embedded, "kubelet")
		if err != nil {
			return nil, fmt.Errorf("embedded captures: %w", err)
		}
		return sub, nil
	}
	if _, err := os.Stat(filepath.Join(dir, Cadvisor)); err != nil {
		dir = filepath.Join(dir, "kubelet")
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("captures directory: %w", err)
	}
	return os.DirFS(dir), nil
}

// Read returns one capture (a name above) from FS("").
func Read(name string) ([]byte, error) {
	fsys, err := FS("")
	if err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("kubelet capture: %w", err)
	}
	return b, nil
}
