package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/edgetel/edgetel/internal/kube"
)

// File polls a node file and reports it when its content changes. Polling rather than inotify
// because the file is usually a ConfigMap or a volume whose writes arrive as symlink swaps,
// which inotify watches on the file itself miss.
type File struct {
	Path     string
	Interval time.Duration
	Logger   *zap.Logger
}

// Run reads the file now and every Interval. A missing or invalid file keeps the last good
// snapshot and is logged; the first read must succeed.
func (f File) Run(ctx context.Context, update func([]Target)) error {
	last, err := os.ReadFile(f.Path)
	if err != nil {
		return err
	}
	targets, err := f.parse(last)
	if err != nil {
		return err
	}
	update(targets)
	t := time.NewTicker(f.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		data, err := os.ReadFile(f.Path)
		if err != nil {
			f.Logger.Warn("node file unreadable, keeping the last nodes", zap.String("path", f.Path), zap.Error(err))
			continue
		}
		if bytes.Equal(data, last) {
			continue
		}
		targets, err := f.parse(data)
		if err != nil {
			f.Logger.Warn("node file invalid, keeping the last nodes", zap.String("path", f.Path), zap.Error(err))
			continue
		}
		last = data
		update(targets)
	}
}

// parse decodes and checks a node file; nodes in it count as Ready unless it says otherwise.
func (f File) parse(data []byte) ([]Target, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var file kube.NodeFile
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("parsing node file %s: %w", f.Path, err)
	}
	targets := make([]Target, len(file.Nodes))
	seen := make(map[string]bool, len(file.Nodes))
	direct := false
	for i, fn := range file.Nodes {
		if err := fn.Validate(); err != nil {
			return nil, fmt.Errorf("node file %s: %w", f.Path, err)
		}
		n := fn.Node()
		if seen[n.Name] {
			return nil, fmt.Errorf("node file %s: node %q listed twice", f.Path, n.Name)
		}
		seen[n.Name] = true
		pods, err := filePods(fn)
		if err != nil {
			return nil, fmt.Errorf("node file %s: %w", f.Path, err)
		}
		targets[i] = Target{Node: n, Direct: fn.Direct, Pods: pods}
		direct = direct || fn.Direct != ""
	}
	if direct {
		f.Logger.Warn("node file: the per-node \"direct\" field is deprecated and will be removed in the next release; "+
			"it is the simulator's, and a production file names each node's ip and port only", zap.String("path", f.Path))
	}
	sortTargets(targets)
	return targets, nil
}

// filePods checks a node's pods: names as the API server would accept them, each pod once.
func filePods(fn kube.FileNode) ([]kube.Pod, error) {
	pods := make([]kube.Pod, 0, len(fn.Pods))
	seen := make(map[string]bool, len(fn.Pods))
	for j, p := range fn.Pods {
		if errs := validation.IsDNS1123Label(p.Namespace); len(errs) > 0 {
			return nil, fmt.Errorf("node %q pods[%d]: namespace %q: %s", fn.Name, j, p.Namespace, strings.Join(errs, "; "))
		}
		if errs := validation.IsDNS1123Subdomain(p.Name); len(errs) > 0 {
			return nil, fmt.Errorf("node %q pods[%d]: name %q: %s", fn.Name, j, p.Name, strings.Join(errs, "; "))
		}
		if len(p.Containers) == 0 {
			return nil, fmt.Errorf("node %q pods[%d]: no containers", fn.Name, j)
		}
		for _, c := range p.Containers {
			if errs := validation.IsDNS1123Label(c); len(errs) > 0 {
				return nil, fmt.Errorf("node %q pods[%d]: container %q: %s", fn.Name, j, c, strings.Join(errs, "; "))
			}
		}
		key := p.Namespace + "/" + p.Name
		if seen[key] {
			return nil, fmt.Errorf("node %q: pod %s listed twice", fn.Name, key)
		}
		seen[key] = true
		pods = append(pods, p)
	}
	return pods, nil
}
