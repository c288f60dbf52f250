package edgesim

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"time"

	"github.com/edgetel/edgetel/internal/kube"
)

// faults are the injected failures; every field is read on the request path without locks.
type faults struct {
	disconnected []atomic.Bool
	closed       []atomic.Bool // session kept but its tunnel closed: 200 with an empty body
	malformed    []atomic.Bool
	explosion    []atomic.Int32
	slowBody     []atomic.Int64 // nanoseconds over which the body is dribbled out
	latency      atomic.Int64   // nanoseconds before the edge answers
	errorRate    atomic.Uint64  // float64 bits: share of answers cut mid-body
	paused       atomic.Bool    // every node refuses every scrape (see Pause)
	kubeletDown  []atomic.Bool  // the edge cannot reach its kubelet: cloudcore never answers
	longLine     []atomic.Int32 // bytes of a line added to the node's text bodies
	// owner is the cloudcore holding the node's live tunnel; sessions has a bit for every
	// cloudcore that holds a session for it, live or closed (cloudcore never deletes one).
	owner    []atomic.Int32
	sessions []atomic.Uint32
}

func (f *faults) init(n, cloudcores int) {
	f.kubeletDown = make([]atomic.Bool, n)
	f.longLine = make([]atomic.Int32, n)
	f.owner = make([]atomic.Int32, n)
	f.sessions = make([]atomic.Uint32, n)
	for i := range n {
		cc := i % cloudcores
		f.owner[i].Store(int32(cc))
		f.sessions[i].Store(1 << cc)
	}
	f.disconnected = make([]atomic.Bool, n)
	f.closed = make([]atomic.Bool, n)
	f.malformed = make([]atomic.Bool, n)
	f.explosion = make([]atomic.Int32, n)
	f.slowBody = make([]atomic.Int64, n)
}

// Disconnect drops the tunnel sessions of the named nodes: cloudcore answers 500 with an empty
// body for them. Unknown names are ignored; see Unknown.
func (s *Sim) Disconnect(names ...string) { s.setConnected(names, false) }

// SiteNodes lists the names of the nodes of a site (their topology.kubernetes.io/zone label), in
// fleet order; none for an unknown site.
func (s *Sim) SiteNodes(site string) []string {
	var out []string
	for _, n := range s.fleet.Nodes {
		if n.Labels[kube.LabelSite] == site {
			out = append(out, n.Name)
		}
	}
	return out
}

// Reconnect gives the named nodes a fresh tunnel session (clearing SetTunnelClosed too).
func (s *Sim) Reconnect(names ...string) { s.setConnected(names, true) }

// Pause makes every node refuse every scrape while on (503 served directly, an empty body through
// the tunnel), so nothing more is served: a benchmark stops serving, lets the system deliver what
// it holds and then compares Served with what arrived.
func (s *Sim) Pause(on bool) {
	s.faults.paused.Store(on)
	s.log.Info("fault: paused", "on", on)
}

// ReconnectAll restores every node's session.
func (s *Sim) ReconnectAll() {
	for i := range s.faults.disconnected {
		s.faults.disconnected[i].Store(false)
		s.faults.closed[i].Store(false)
	}
	s.log.Info("fault: all nodes reconnected")
}

func (s *Sim) setConnected(names []string, connected bool) {
	for _, name := range names {
		if i, ok := s.byKey[name]; ok {
			s.faults.disconnected[i].Store(!connected)
			s.faults.closed[i].Store(false) // a new session replaces the closed one
		}
	}
	s.log.Info("fault: tunnel sessions", "connected", connected, "nodes", names)
}

// SetTunnelClosed keeps node name's session but closes its tunnel. cloudcore never deletes a
// session (docs/kubeedge.md §2.2), so after an edge drops its tunnel cloudcore still answers 200 and
// then has nothing to relay: the body is empty.
func (s *Sim) SetTunnelClosed(name string, closed bool) {
	if i, ok := s.byKey[name]; ok {
		s.faults.closed[i].Store(closed)
		s.log.Info("fault: tunnel closed", "node", name, "closed", closed)
	}
}

// MoveTunnel moves node name's tunnel to cloudcore replica to, as an edge does when the replica
// it was on restarts: to holds the live session; the one it left keeps a closed session and,
// like real cloudcore, answers 200 with an empty body for it from then on.
func (s *Sim) MoveTunnel(name string, to int) error {
	i, ok := s.byKey[name]
	if !ok {
		return fmt.Errorf("edgesim: no node %q", name)
	}
	if to < 0 || to >= s.cfg.Cloudcores {
		return fmt.Errorf("edgesim: cloudcore %d out of range [0, %d)", to, s.cfg.Cloudcores)
	}
	s.faults.owner[i].Store(int32(to))
	for {
		old := s.faults.sessions[i].Load()
		if s.faults.sessions[i].CompareAndSwap(old, old|1<<to) {
			break
		}
	}
	s.faults.closed[i].Store(false)
	s.log.Info("fault: tunnel moved", "node", name, "cloudcore", to)
	return nil
}

// TunnelOwner is the cloudcore replica holding node name's live tunnel (-1 for no such node).
func (s *Sim) TunnelOwner(name string) int {
	i, ok := s.byKey[name]
	if !ok {
		return -1
	}
	return int(s.faults.owner[i].Load())
}

// SetKubeletDown makes node name's edge unable to reach its kubelet. Real cloudcore then never
// answers (seen: the edge sends nothing back and cloudcore's 200 is never written), so a request
// through the tunnel waits until the client gives up; served directly the connection is cut.
func (s *Sim) SetKubeletDown(name string, down bool) {
	if i, ok := s.byKey[name]; ok {
		s.faults.kubeletDown[i].Store(down)
		s.log.Info("fault: kubelet down", "node", name, "down", down)
	}
}

// SetLongLine adds a line of n bytes (newline included) in the middle of node name's text
// bodies (0 removes it). Served directly it arrives whole; through the tunnel the edge's line
// scanner (64 KiB) stops there and cloudcore ends the answer cleanly, at that line.
func (s *Sim) SetLongLine(name string, n int) {
	if i, ok := s.byKey[name]; ok {
		s.faults.longLine[i].Store(int32(min(max(n, 0), maxLongLine)))
		s.log.Info("fault: long line", "node", name, "bytes", n)
	}
}

const maxLongLine = 16 << 20

// Unknown returns the names that are not nodes of the fleet (by name or IP).
func (s *Sim) Unknown(names ...string) []string {
	var out []string
	for _, n := range names {
		if _, ok := s.byKey[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}

// Disconnected lists the nodes without a session, by name.
func (s *Sim) Disconnected() []string {
	var out []string
	for i := range s.faults.disconnected {
		if s.faults.disconnected[i].Load() {
			out = append(out, s.nodeName(i))
		}
	}
	return out
}

// DisconnectFraction disconnects round(f × nodes) connected nodes chosen at random (f in [0, 1])
// and returns their names, sorted.
func (s *Sim) DisconnectFraction(f float64) []string {
	if !(f > 0) {
		return nil
	}
	if f > 1 {
		f = 1
	}
	var candidates []int
	for i := range s.faults.disconnected {
		if !s.faults.disconnected[i].Load() {
			candidates = append(candidates, i)
		}
	}
	want := int(math.Round(f * float64(len(s.nodes))))
	if want > len(candidates) {
		want = len(candidates)
	}
	rand.Shuffle(len(candidates), func(a, b int) { candidates[a], candidates[b] = candidates[b], candidates[a] })
	names := make([]string, 0, want)
	for _, i := range candidates[:want] {
		s.faults.disconnected[i].Store(true)
		names = append(names, s.nodeName(i))
	}
	sort.Strings(names)
	s.log.Info("fault: disconnected a fraction of the fleet", "fraction", f, "nodes", len(names))
	return names
}

// SetLatency delays every edge answer by d (after cloudcore's 200 is sent).
func (s *Sim) SetLatency(d time.Duration) {
	s.faults.latency.Store(int64(max(d, 0)))
	s.log.Info("fault: latency", "latency", d)
}

// SetErrorRate makes a share r (0..1) of edge answers fail mid-body: through cloudcore that is a
// 200 whose body ends early at a line boundary, with a clean end of response; directly it is a
// connection cut mid-body.
func (s *Sim) SetErrorRate(r float64) {
	r = math.Min(math.Max(r, 0), 1)
	s.faults.errorRate.Store(math.Float64bits(r))
	s.log.Info("fault: error rate", "rate", r)
}

// SetSlowBody dribbles node name's bodies out over d (0 restores).
func (s *Sim) SetSlowBody(name string, d time.Duration) {
	if i, ok := s.byKey[name]; ok {
		s.faults.slowBody[i].Store(int64(max(d, 0)))
		s.log.Info("fault: slow body", "node", name, "duration", d)
	}
}

// SetMalformed makes node name serve exposition (and JSON) its parser rejects.
func (s *Sim) SetMalformed(name string, on bool) {
	if i, ok := s.byKey[name]; ok {
		s.faults.malformed[i].Store(on)
		s.log.Info("fault: malformed", "node", name, "on", on)
	}
}

// SetExplosion adds series extra unique series to node name's text bodies (0 restores).
func (s *Sim) SetExplosion(name string, series int) {
	if i, ok := s.byKey[name]; ok {
		s.faults.explosion[i].Store(int32(min(max(series, 0), math.MaxInt32)))
		s.log.Info("fault: series explosion", "node", name, "series", series)
	}
}

// Expected returns exactly the body node name serves for path during the current step (nil for
// an unknown node or path). Faults that change the body (malformed, explosion) are included;
// an error-rate cut serves a prefix of it.
func (s *Sim) Expected(name, path string) []byte {
	i, ok := s.byKey[name]
	if !ok {
		return nil
	}
	ep := endpointOf(path)
	if ep < 0 {
		return nil
	}
	step := s.Step()
	var b bytes.Buffer
	body := s.render(nil, i, ep, step)
	head, long, tail := s.withLongLine(i, ep, body)
	b.Write(head)
	b.Write(long)
	b.Write(tail)
	s.writeExplosion(&b, i, ep, step)
	return b.Bytes()
}

func endpointOf(path string) int {
	for ep, p := range endpointPaths {
		if p == path {
			return ep
		}
	}
	return -1
}

func (s *Sim) errorRate() float64 { return math.Float64frombits(s.faults.errorRate.Load()) }
