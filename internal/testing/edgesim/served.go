package edgesim

import (
	"bytes"
	"sync/atomic"
)

// served counts the samples edgesim handed to scrapers, so a benchmark can say exactly how many
// a system lost (served minus delivered) without reasoning about intervals. A sample is a
// (series, timestamp) pair as the scraper stores it: a line without a timestamp is a new
// sample every time a body is served (the scraper stamps it), while a line with one (most of
// cadvisor's) is the same sample however often its step is served, so it counts once per
// node, endpoint and step. A scraper that fetches a step twice and skips the next one has lost
// nothing: the skipped step was never served to it.
type served struct {
	nodes []servedNode
}

type servedNode struct {
	samples  atomic.Int64
	lastStep [numEndpoints]atomic.Int64 // 1 + the last step whose timestamped samples counted
}

// sampleCounts are the samples of a text body, with and without their own timestamp.
type sampleCounts struct{ timed, untimed int64 }

func (c *served) init(n int) { c.nodes = make([]servedNode, n) }

// add counts a body of node i for ep at step that was written out whole.
func (c *served) add(i, ep int, step int64, n sampleCounts) {
	sn := &c.nodes[i]
	add := n.untimed
	for {
		last := sn.lastStep[ep].Load()
		if last >= step+1 {
			break
		}
		if sn.lastStep[ep].CompareAndSwap(last, step+1) {
			add += n.timed
			break
		}
	}
	sn.samples.Add(add)
}

// reset forgets what was served: the next system scraping the fleet starts from zero, and a
// step another system fetched counts again when this one fetches it.
func (c *served) reset() {
	for i := range c.nodes {
		sn := &c.nodes[i]
		sn.samples.Store(0)
		for ep := range sn.lastStep {
			sn.lastStep[ep].Store(0)
		}
	}
}

// countSamples counts the sample lines of a Prometheus text body. A line has a timestamp when
// two fields follow its series (label values may hold spaces, so the series ends at the last
// '}' when there is one).
func countSamples(body []byte) sampleCounts {
	var n sampleCounts
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		rest := line
		if i := bytes.LastIndexByte(line, '}'); i >= 0 {
			rest = line[i+1:]
		} else if i := bytes.IndexByte(line, ' '); i >= 0 {
			rest = line[i:]
		}
		if len(bytes.Fields(rest)) == 2 {
			n.timed++
		} else {
			n.untimed++
		}
	}
	return n
}

// Served returns the samples served whole since New, in total and by node name: what a scraper
// that stored every body edgesim wrote out would hold, counted as (series, timestamp) pairs.
// Bodies changed by a fault (malformed, explosion) or cut short (error rate, a closed tunnel,
// a slow body) do not count: no scraper can store them.
func (s *Sim) Served() (total int64, byNode map[string]int64) {
	byNode = make(map[string]int64, len(s.nodes))
	for i := range s.served.nodes {
		n := s.served.nodes[i].samples.Load()
		byNode[s.nodeName(i)] = n
		total += n
	}
	return total, byNode
}

// ResetServed starts Served from zero. Call it while no scrape is in flight (e.g. paused, or before
// the system under test starts), or a body written out during the reset may count or not.
func (s *Sim) ResetServed() { s.served.reset() }
