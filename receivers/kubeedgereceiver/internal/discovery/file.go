package discovery

import (
	"bytes"
	"context"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/edgetel/edgetel/internal/fleet"
)

// File polls a fleet file and reports it when its content changes. Polling rather than inotify
// because the file is usually a ConfigMap or a volume whose writes arrive as symlink swaps,
// which inotify watches on the file itself miss.
type File struct {
	Path     string
	Interval time.Duration
	Logger   *zap.Logger
}

// Run reads the file now and every Interval. A missing or invalid file keeps the last good
// snapshot and is logged; the first read must succeed.
func (f File) Run(ctx context.Context, update func([]Node)) error {
	last, err := os.ReadFile(f.Path)
	if err != nil {
		return err
	}
	nodes, err := f.load()
	if err != nil {
		return err
	}
	update(nodes)
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
			f.Logger.Warn("fleet file unreadable, keeping the last nodes", zap.String("path", f.Path), zap.Error(err))
			continue
		}
		if bytes.Equal(data, last) {
			continue
		}
		nodes, err := f.load()
		if err != nil {
			f.Logger.Warn("fleet file invalid, keeping the last nodes", zap.String("path", f.Path), zap.Error(err))
			continue
		}
		last = data
		update(nodes)
	}
}

func (f File) load() ([]Node, error) {
	file, err := fleet.Load(f.Path)
	if err != nil {
		return nil, err
	}
	nodes := make([]Node, len(file.Nodes))
	for i, n := range file.Nodes {
		nodes[i] = Node{Node: n, Ready: true}
	}
	sortNodes(nodes)
	return nodes, nil
}
