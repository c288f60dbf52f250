package objstoreexporter

import (
	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/edgetel/edgetel/internal/sampleconv"
)

// lane converts batches into tsdb appends: a converter and a series cache, which are
// single-threaded, and the lock that serializes their use (a channel, so that a push can give up
// waiting for it). There is one lane per core: at start-up every series of every node is new and
// its creation in the head is costly, and one lane held a shard's conversions to one core.
type lane struct {
	lock   chan struct{}
	conv   *sampleconv.Converter
	series *seriesCache
}

func newLanes(cfg *Config, n int) []*lane {
	lanes := make([]*lane, max(n, 1))
	for i := range lanes {
		lanes[i] = &lane{lock: make(chan struct{}, 1), conv: sampleconv.New(cfg.Options()), series: newSeriesCache()}
	}
	return lanes
}

// laneOf picks md's lane by its first resource's node (or instance): a node's batches always
// take the same lane, so that its series are cached once.
func (e *objstoreExporter) laneOf(md pmetric.Metrics) *lane {
	if len(e.lanes) == 1 || md.ResourceMetrics().Len() == 0 {
		return e.lanes[0]
	}
	attrs := md.ResourceMetrics().At(0).Resource().Attributes()
	key := ""
	for _, name := range []string{"k8s.node.name", "service.instance.id"} {
		if v, ok := attrs.Get(name); ok {
			key = v.AsString()
			break
		}
	}
	return e.lanes[xxhash.Sum64String(key)%uint64(len(e.lanes))]
}

// lockLanes takes every lane's lock and returns what gives them back.
func (e *objstoreExporter) lockLanes() (unlock func()) {
	for _, l := range e.lanes {
		l.lock <- struct{}{}
	}
	return func() {
		for _, l := range e.lanes {
			<-l.lock
		}
	}
}

// seriesCached is the number of series the lanes' caches hold.
func (e *objstoreExporter) seriesCached() int {
	n := 0
	for _, l := range e.lanes {
		n += l.series.len()
	}
	return n
}
