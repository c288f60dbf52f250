package edgenodeprocessor

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sharedcomponent"
	"github.com/edgetel/edgetel/processors/edgenodeprocessor/internal/nodecache"
)

// nodeSources lets the metrics, logs and traces instances of one configured component share a
// single node cache, one per component ID (internal/sharedcomponent: it follows the informer
// from the first instance's Start to the last one's Shutdown). The informer behind the cache
// comes from the kube registry, so the kubeedge receiver watching the same nodes shares it too.
type nodeSources struct {
	reg     *kube.Registry
	sources *sharedcomponent.Map[component.ID, *nodeSource]
}

func newNodeSources(reg *kube.Registry) *nodeSources {
	return &nodeSources{reg: reg, sources: sharedcomponent.NewMap[component.ID, *nodeSource]()}
}

func (s *nodeSources) hold(id component.ID, cfg *Config) (*sharedcomponent.Ref[*nodeSource], error) {
	return s.sources.Hold(id, func() (*nodeSource, error) {
		return &nodeSource{reg: s.reg, cfg: cfg, cache: nodecache.New(cacheOptions(cfg))}, nil
	})
}

// nodeSource is one node cache fed by the shared Node informer while it is started.
type nodeSource struct {
	reg   *kube.Registry
	cfg   *Config
	cache *nodecache.Cache

	nodes *kube.Nodes
	sub   *kube.Subscription
}

func (src *nodeSource) Start(ctx context.Context, _ component.Host) error {
	nodes, err := src.reg.AcquireNodes(kube.NodeWatch{
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

func (src *nodeSource) Shutdown(context.Context) error {
	src.sub.Remove()
	src.nodes.Release()
	src.nodes, src.sub = nil, nil
	return nil
}
