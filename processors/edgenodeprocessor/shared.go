package edgenodeprocessor

import (
	"context"
	"fmt"
	"sync"

	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/nodecache"
)

// nodeSources lets the metrics, logs and traces instances of one configured component share a
// single node informer and cache. The Collector hands every instance of a component the same
// *Config, which is the key. It belongs to a factory, so there is no package-level state.
type nodeSources struct {
	newClient clientFunc

	mu       sync.Mutex
	byConfig map[*Config]*nodeSource
}

func newNodeSources(newClient clientFunc) *nodeSources {
	return &nodeSources{newClient: newClient, byConfig: make(map[*Config]*nodeSource)}
}

func (s *nodeSources) get(cfg *Config) *nodeSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.byConfig[cfg]
	if src == nil {
		src = &nodeSource{owner: s, cfg: cfg, cache: nodecache.New(cacheOptions(cfg))}
		s.byConfig[cfg] = src
	}
	return src
}

// nodeSource is one node cache; its informer runs while at least one instance is started.
type nodeSource struct {
	owner *nodeSources
	cfg   *Config
	cache *nodecache.Cache

	mu      sync.Mutex
	refs    int
	watcher *nodecache.Watcher
}

func (src *nodeSource) acquire(ctx context.Context) error {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.refs == 0 {
		w, err := src.start(ctx)
		if err != nil {
			return err
		}
		src.watcher = w
	}
	src.refs++
	return nil
}

func (src *nodeSource) start(ctx context.Context) (*nodecache.Watcher, error) {
	client, err := src.owner.newClient(src.cfg)
	if err != nil {
		return nil, fmt.Errorf("edgenode: creating Kubernetes client: %w", err)
	}
	w, err := nodecache.Watch(client, src.cfg.NodeSelector, src.cfg.ResyncPeriod, src.cache)
	if err != nil {
		return nil, fmt.Errorf("edgenode: watching nodes: %w", err)
	}
	if !src.cfg.WaitForMetadata {
		return w, nil
	}
	waitCtx, cancel := context.WithTimeout(ctx, src.cfg.WaitForMetadataTimeout)
	defer cancel()
	if !w.WaitForSync(waitCtx) {
		w.Stop()
		return nil, fmt.Errorf("edgenode: node list not synced within wait_for_metadata_timeout %v", src.cfg.WaitForMetadataTimeout)
	}
	return w, nil
}

func (src *nodeSource) release() {
	src.mu.Lock()
	defer src.mu.Unlock()
	src.refs--
	if src.refs > 0 {
		return
	}
	src.watcher.Stop()
	src.watcher = nil
	src.owner.mu.Lock()
	if src.owner.byConfig[src.cfg] == src {
		delete(src.owner.byConfig, src.cfg)
	}
	src.owner.mu.Unlock()
}
