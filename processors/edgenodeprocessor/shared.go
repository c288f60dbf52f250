package edgenodeprocessor

import (
	"context"
	"fmt"
	"sync"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/nodecache"
)

// nodeSources lets the metrics, logs and traces instances of one configured component share a
// single node cache. The Collector hands every instance of a component the same *Config, which
// is the key. The informer behind the cache comes from the kube registry, so the kubeedge
// receiver watching the same nodes shares it too.
type nodeSources struct {
	reg *kube.Registry

	mu       sync.Mutex
	byConfig map[*Config]*nodeSource
}

func newNodeSources(reg *kube.Registry) *nodeSources {
	return &nodeSources{reg: reg, byConfig: make(map[*Config]*nodeSource)}
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

// nodeSource is one node cache; it follows the informer while at least one instance is started.
type nodeSource struct {
	owner *nodeSources
	cfg   *Config
	cache *nodecache.Cache

	mu    sync.Mutex
	refs  int
	nodes *kube.Nodes
	sub   *kube.Subscription
}

func (src *nodeSource) acquire(ctx context.Context) error {
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.refs == 0 {
		if err := src.start(ctx); err != nil {
			return err
		}
	}
	src.refs++
	return nil
}

func (src *nodeSource) start(ctx context.Context) error {
	nodes, err := src.owner.reg.AcquireNodes(kube.NodeWatch{
		API: src.cfg.APIConfig, Selector: src.cfg.NodeSelector, Resync: src.cfg.ResyncPeriod,
	})
	if err != nil {
		return fmt.Errorf("edgenode: watching nodes: %w", err)
	}
	sub, err := nodes.Handle(kube.NodeHandler{Upsert: src.cache.Upsert, Delete: src.cache.Delete})
	if err != nil {
		nodes.Release()
		return fmt.Errorf("edgenode: watching nodes: %w", err)
	}
	if src.cfg.WaitForMetadata {
		waitCtx, cancel := context.WithTimeout(ctx, src.cfg.WaitForMetadataTimeout)
		defer cancel()
		if !sub.WaitForSync(waitCtx) {
			sub.Remove()
			nodes.Release()
			return fmt.Errorf("edgenode: node list not synced within wait_for_metadata_timeout %v", src.cfg.WaitForMetadataTimeout)
		}
	}
	src.nodes, src.sub = nodes, sub
	return nil
}

func (src *nodeSource) release() {
	src.mu.Lock()
	defer src.mu.Unlock()
	src.refs--
	if src.refs > 0 {
		return
	}
	src.sub.Remove()
	src.nodes.Release()
	src.nodes, src.sub = nil, nil
	src.owner.mu.Lock()
	if src.owner.byConfig[src.cfg] == src {
		delete(src.owner.byConfig, src.cfg)
	}
	src.owner.mu.Unlock()
}
