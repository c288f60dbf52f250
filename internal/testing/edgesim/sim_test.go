package edgesim

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

var textPaths = []string{"/metrics", "/metrics/cadvisor", "/metrics/resource"}

// TestFleetScrapedThroughCloudcore scrapes every endpoint of 1,000 nodes through the single TLS
// endpoint and parses every body with Prometheus' parser and the kubelet's summary types.
func TestFleetScrapedThroughCloudcore(t *testing.T) {
	for _, requireCert := range []bool{false, true} {
		t.Run(fmt.Sprintf("requireClientCert=%v", requireCert), func(t *testing.T) {
			nodes := 1000
			if requireCert {
				nodes = 50 // the variant checks the handshake, the full fleet runs above
			}
			if raceEnabled {
				nodes /= 10
			}
			s := startSim(t, Config{Nodes: nodes, Seed: 1, RequireClientCert: requireCert, ManualStep: true})
			c := client(t, s, requireCert)
			f := s.Fleet()
			require.Len(t, f.Nodes, nodes)
			jobs := make(chan fleet.Node)
			var mu sync.Mutex
			var failures []string
			fail := func(format string, args ...any) {
				mu.Lock()
				defer mu.Unlock()
				failures = append(failures, fmt.Sprintf(format, args...))
			}
			var wg sync.WaitGroup
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range jobs {
						scrapeNode(c, s, n, fail)
					}
				}()
			}
			for _, n := range f.Nodes {
				jobs <- n
			}
			close(jobs)
			wg.Wait()
			require.Empty(t, failures)
		})
	}
}

func scrapeNode(c *http.Client, s *Sim, n fleet.Node, fail func(string, ...any)) {
	for _, path := range textPaths {
		code, body, err := tryGet(c, s, n.Address(), path)
		if err != nil || code != http.StatusOK {
			fail("%s %s: %d %v", n.Name, path, code, err)
			continue
		}
		series, err := parseText(body)
		if err != nil {
			fail("%s %s: parse: %v", n.Name, path, err)
			continue
		}
		if len(series) == 0 {
			fail("%s %s: no series", n.Name, path)
		}
	}
	code, body, err := tryGet(c, s, n.Address(), "/stats/summary")
	if err != nil || code != http.StatusOK {
		fail("%s summary: %d %v", n.Name, code, err)
		return
	}
	sum, err := parseSummary(body)
	if err != nil {
		fail("%s summary: %v", n.Name, err)
		return
	}
	if sum.Node.NodeName != n.Name {
		fail("%s summary: nodeName %q", n.Name, sum.Node.NodeName)
	}
	if len(sum.Pods) == 0 {
		fail("%s summary: %d pods", n.Name, len(sum.Pods))
	}
}

func TestBodiesArePerNode(t *testing.T) {
	s := startSim(t, Config{Nodes: 20, Seed: 7, ManualStep: true})
	c := client(t, s, false)
	a, b := s.Fleet().Nodes[0], s.Fleet().Nodes[1]
	_, bodyA := get(t, c, s, a.Address(), "/metrics/cadvisor")
	_, bodyB := get(t, c, s, b.Address(), "/metrics/cadvisor")
	assert.NotEqual(t, bodyA, bodyB)
	assert.Equal(t, s.Expected(a.Name, "/metrics/cadvisor"), bodyA)
	assert.NotContains(t, string(bodyA), "datagen-1-35", "the capture's node name leaks")
	assert.NotContains(t, string(bodyA), "e2e-deployment-79967c5968-8bnn8", "the capture's pod name leaks")
	_, body := get(t, c, s, a.Address(), "/stats/summary")
	sum, err := parseSummary(body)
	require.NoError(t, err)
	assert.Equal(t, a.Name, sum.Node.NodeName)

	// The endpoints of one node agree on its pods.
	_, res := get(t, c, s, a.Address(), "/metrics/resource")
	require.NotEmpty(t, sum.Pods)
	for _, p := range sum.Pods {
		assert.Contains(t, string(bodyA), `pod="`+p.PodRef.Name+`"`)
		assert.Contains(t, string(bodyA), p.PodRef.UID, "cadvisor's cgroup id carries the pod uid")
		assert.Contains(t, string(res), `pod="`+p.PodRef.Name+`"`)
	}
	assert.True(t, strings.Contains(string(bodyA), `pod="`))
}
