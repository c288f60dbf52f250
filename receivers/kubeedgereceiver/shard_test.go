package kubeedgereceiver

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
)

// For every shard count, the replicas together scrape each node exactly once per round.
func TestShardsSplitTheFleet(t *testing.T) {
	cc := newFakeCloudcore(t)
	body := []byte("x 1\n")
	var nodes []StaticNode
	for i := range 60 {
		n := StaticNode{Name: fmt.Sprintf("edge-%03d", i), IP: fmt.Sprintf("10.1.%d.%d", i/200, i%200+1), Port: 10351}
		nodes = append(nodes, n)
		cc.set(n.node().Address(), "/metrics/cadvisor", body)
	}
	for count := 1; count <= 8; count++ {
		t.Run(fmt.Sprint(count), func(t *testing.T) {
			owner := map[string][]int{}
			sinks := make([]*consumertest.MetricsSink, count)
			for index := range count {
				cfg := testConfig(t, cc, nodes...)
				cfg.Shard = ShardConfig{Index: index, Count: count}
				sinks[index] = new(consumertest.MetricsSink)
				startReceiver(t, cfg, sinks[index])
			}
			require.Eventually(t, func() bool {
				total := 0
				for _, s := range sinks {
					seen := map[string]bool{}
					for _, md := range s.AllMetrics() {
						v, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get("k8s.node.name")
						seen[v.Str()] = true
					}
					total += len(seen)
				}
				return total >= len(nodes)
			}, 10*time.Second, 20*time.Millisecond)
			time.Sleep(300 * time.Millisecond)
			for index, s := range sinks {
				seen := map[string]bool{}
				for _, md := range s.AllMetrics() {
					v, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get("k8s.node.name")
					seen[v.Str()] = true
				}
				for name := range seen {
					owner[name] = append(owner[name], index)
				}
			}
			for _, n := range nodes {
				assert.Len(t, owner[n.Name], 1, "%s scraped by shards %v", n.Name, owner[n.Name])
			}
			if count > 1 {
				for index, s := range sinks {
					assert.NotEmpty(t, s.AllMetrics(), "shard %d of %d got no node", index, count)
				}
			}
		})
	}
}
