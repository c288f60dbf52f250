package edgesim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"
)

// cloudcoreRoute reports whether cloudcore's stream server (go-restful) routes path to its
// metrics/stats handler (docs/kubeedge.md §2.1). Other routes (logs, exec, attach) are routed too but
// need a pod lookup edgesim does not model; they answer like a failed lookup.
func cloudcoreRoute(path string) (metrics, routed bool) {
	switch path {
	case "/stats", "/stats/summary", "/stats/container", "/metrics", "/metrics/cadvisor", "/metrics/probes", "/metrics/resource":
		return true, true
	}
	seg := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case seg[0] == "stats" && (len(seg) == 3 || len(seg) == 5) && nonEmpty(seg):
		return true, true
	case seg[0] == "containerLogs" && len(seg) == 4 && nonEmpty(seg):
		return false, true
	case (seg[0] == "exec" || seg[0] == "attach") && (len(seg) == 4 || len(seg) == 5) && nonEmpty(seg):
		return false, true
	}
	return false, false
}

func nonEmpty(seg []string) bool {
	for _, s := range seg {
		if s == "" {
			return false
		}
	}
	return true
}

// sessionKey is how cloudcore's getMetrics picks the tunnel session (docs/kubeedge.md §2.2).
func sessionKey(r *http.Request) string {
	key := strings.Split(r.Host, ":")[0]
	if xfu := r.Header.Get("X-Forwarded-Uri"); strings.HasPrefix(xfu, "/api/v1/nodes/") {
		if t := strings.Split(xfu, "/"); len(t) > 6 {
			key = t[4]
		}
	}
	return key
}

// restfulRoots are the root paths of cloudcore's go-restful web services. go-restful registers
// each root and its subtree on a Go ServeMux, so a path outside them gets Go's own 404 text and
// one inside them that no route matches gets go-restful's (seen on real cloudcore).
var restfulRoots = []string{"/containerLogs", "/exec", "/attach", "/stats", "/metrics"}

func underRestfulRoot(path string) bool {
	for _, root := range restfulRoots {
		if path == root || strings.HasPrefix(path, root+"/") {
			return true
		}
	}
	return false
}

// serveStream is cloudcore replica cc's stream server.
func (s *Sim) serveStream(w http.ResponseWriter, r *http.Request, cc int) {
	metrics, routed := cloudcoreRoute(r.URL.Path)
	if !routed {
		s.stats.notRouted.Add(1)
		if !underRestfulRoot(r.URL.Path) {
			http.NotFound(w, r) // "404 page not found"
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("404: Page Not Found"))
		return
	}
	if metrics && r.Method != http.MethodGet || !metrics && r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET")
		if !metrics {
			w.Header().Set("Allow", "GET, POST")
		}
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write([]byte("405: Method Not Allowed"))
		return
	}
	if lt, ok := s.parseLogPath(r.URL.Path); ok && r.Method == http.MethodGet {
		s.relayLogs(w, r, lt, cc)
		return
	}
	i, ok := s.byKey[sessionKey(r)]
	if !metrics || !ok {
		s.noSession(w)
		return
	}
	switch s.session(i, cc) {
	case sessionNone:
		s.noSession(w)
		return
	case sessionClosed:
		// The session is kept, its tunnel is gone: 200 and nothing to relay.
		s.stats.staleSession.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	// cloudcore commits to 200 before it asks the edge. The status goes out with the first
	// relayed line (Go sniffs its Content-Type then), so a client sees nothing before the edge
	// answers.
	w.WriteHeader(http.StatusOK)
	s.answer(w, r, i, true)
}

// noSession is cloudcore's deferred error path: 500, nothing else.
func (s *Sim) noSession(w http.ResponseWriter) {
	s.stats.noSession.Add(1)
	w.WriteHeader(http.StatusInternalServerError)
}

// What cloudcore replica cc holds for a node.
const (
	sessionNone = iota
	sessionClosed
	sessionLive
)

func (s *Sim) session(i, cc int) int {
	f := &s.faults
	switch {
	case f.sessions[i].Load()&(1<<cc) == 0:
		return sessionNone
	case int(f.owner[i].Load()) != cc:
		return sessionClosed
	case f.disconnected[i].Load():
		return sessionNone
	case f.closed[i].Load():
		return sessionClosed
	}
	return sessionLive
}

// hang is what a client gets when the edge cannot reach its kubelet: nothing, until it gives up.
func (s *Sim) hang(r *http.Request) {
	s.stats.hung.Add(1)
	select {
	case <-r.Context().Done():
	case <-s.done:
	}
}

// answer is the edge's (edged's) answer for node i, relayed through the tunnel or served directly.
func (s *Sim) answer(w http.ResponseWriter, r *http.Request, i int, tunnel bool) {
	if s.faults.paused.Load() {
		if !tunnel {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		return
	}
	if s.faults.kubeletDown[i].Load() {
		if !tunnel {
			panic(http.ErrAbortHandler) // nothing listens on the kubelet port
		}
		s.hang(r)
		return
	}
	if d := time.Duration(s.faults.latency.Load()); d > 0 && !sleep(r.Context(), d) {
		return
	}
	ep := endpointOf(r.URL.Path)
	if ep < 0 {
		// edged's own 404; through the tunnel its status is lost and only the text arrives.
		if !tunnel {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusNotFound)
		}
		w.Write([]byte("404 page not found\n"))
		return
	}
	step := s.Step()
	body, samples, release := s.body(i, ep, step)
	defer release()
	if !tunnel {
		if ep == epSummary {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		}
	}
	head, long, tail := s.withLongLine(i, ep, body)
	if long != nil {
		if tunnel {
			// The edge's scanner stops at the long line; cloudcore ends the answer cleanly.
			s.stats.longLine.Add(1)
			s.stats.truncated.Add(1)
			w.Write(edgeRelay(head))
			return
		}
		w.Write(head)
		w.Write(long)
		w.Write(tail)
		s.stats.bodies.Add(1)
		s.stats.bytes.Add(int64(len(head) + len(long) + len(tail)))
		return
	}
	if rate := s.errorRate(); rate > 0 && rand.Float64() < rate {
		s.stats.truncated.Add(1)
		w.Write(body[:cutAtLine(body, rand.IntN(len(body)+1))])
		if !tunnel {
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler) // the edge dies mid-body: the connection breaks
		}
		return // cloudcore ends the response cleanly: a 200 with a short body
	}
	if tunnel && ep != epSummary {
		// The kubelet writes /stats/summary indented (go-restful's PrettyPrintResponses), in
		// short lines; edgesim renders it compact, on one line the edge's scanner would stop at.
		body = edgeRelay(body)
	}
	s.stats.bodies.Add(1)
	s.stats.bytes.Add(int64(len(body)))
	if d := time.Duration(s.faults.slowBody[i].Load()); d > 0 {
		dribble(r.Context(), w, body, d)
		return
	}
	if _, err := w.Write(body); err != nil {
		return
	}
	if s.variant(i) == 0 && s.faults.explosion[i].Load() == 0 {
		s.served.add(i, ep, step, samples)
	}
	s.writeExplosion(w, i, ep, step)
}

// edgeMaxLine is the longest line the edge relays: edgestream reads the kubelet's body with a
// bufio.Scanner of the default 64 KiB, which stops at the first longer line.
const edgeMaxLine = bufio.MaxScanTokenSize - 1

// edgeRelay is body as it arrives through the tunnel: the edge sends it line by line, each with
// "\n" appended (so "\r\n" becomes "\n" and a missing final newline is added), up to the first
// line over edgeMaxLine. It returns body itself when that changes nothing.
func edgeRelay(body []byte) []byte {
	end := len(body)
	for start := 0; start < len(body); {
		n := bytes.IndexByte(body[start:], '\n')
		if n < 0 {
			n = len(body) - start
		}
		if n > edgeMaxLine {
			end = start
			break
		}
		start += n + 1
	}
	body = body[:end]
	if !bytes.Contains(body, []byte("\r\n")) && (len(body) == 0 || body[len(body)-1] == '\n') {
		return body
	}
	out := bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}

// withLongLine splits a text body where SetLongLine's line goes (at a family boundary half-way
// through) and returns that line; long is nil without one.
func (s *Sim) withLongLine(i, ep int, body []byte) (head, long, tail []byte) {
	n := int(s.faults.longLine[i].Load())
	if n == 0 || ep == epSummary {
		return body, nil, nil
	}
	pos := len(body)
	if k := bytes.Index(body[len(body)/2:], []byte("\n# HELP ")); k >= 0 {
		pos = len(body)/2 + k + 1
	}
	return body[:pos], longLine(n), body[pos:]
}

// longLine is a family whose one sample line is n bytes long, newline included.
func longLine(n int) []byte {
	const typ = "# TYPE edgesim_long_line gauge\n"
	const head, foot = `edgesim_long_line{blob="`, "\"} 1\n"
	fill := max(n-len(head)-len(foot), 1)
	b := make([]byte, 0, len(typ)+len(head)+fill+len(foot))
	b = append(b, typ...)
	b = append(b, head...)
	b = append(b, bytes.Repeat([]byte("x"), fill)...)
	return append(b, foot...)
}

// cutAtLine moves n back to the start of its line: cloudcore relays the edge's body line by line.
func cutAtLine(body []byte, n int) int {
	if n >= len(body) {
		n = len(body) - 1
	}
	if n <= 0 {
		return 0
	}
	return bytes.LastIndexByte(body[:n], '\n') + 1
}

// dribble writes body in 20 flushed pieces spread over d.
func dribble(ctx context.Context, w http.ResponseWriter, body []byte, d time.Duration) {
	const pieces = 20
	rc := http.NewResponseController(w)
	size := (len(body) + pieces - 1) / pieces
	for len(body) > 0 {
		n := min(size, len(body))
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		rc.Flush()
		body = body[n:]
		if len(body) > 0 && !sleep(ctx, d/pieces) {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// nodeConn marks a direct-mode connection with its node.
type nodeConn struct {
	net.Conn
	node int
}

type nodeListener struct {
	net.Listener
	node int
}

func (l nodeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return nodeConn{c, l.node}, nil
}

type nodeKey struct{}

// startDirect gives every node its own loopback listener speaking plain HTTP, like edged's
// read-only server (plain HTTP by default, docs/kubeedge.md §7).
func (s *Sim) startDirect() error {
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.serveDirect),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			if nc, ok := c.(nodeConn); ok {
				return context.WithValue(ctx, nodeKey{}, nc.node)
			}
			return ctx
		},
	}
	s.servers = append(s.servers, srv)
	for i := range s.nodes {
		ln, err := directListen(i)
		if err != nil {
			return fmt.Errorf("edgesim: direct listener for %s: %w", s.nodeName(i), err)
		}
		s.fleet.Nodes[i].Direct = ln.Addr().String()
		nl := nodeListener{ln, i}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			srv.Serve(nl)
		}()
	}
	return nil
}

// directListen gives node i its own loopback address (127.2.0.0/16 is loopback on Linux), so its
// port comes from an almost empty range: thousands of ephemeral binds on 127.0.0.1 alone get slow
// in the kernel's port search. Where that address is refused, 127.0.0.1 serves.
func directListen(i int) (net.Listener, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.2.%d.%d:0", i/250, i%250+1))
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	return ln, err
}

// serveDirect is edged's read-only kubelet server for one node.
func (s *Sim) serveDirect(w http.ResponseWriter, r *http.Request) {
	i, ok := r.Context().Value(nodeKey{}).(int)
	if !ok {
		http.Error(w, "no node on this connection", http.StatusInternalServerError)
		return
	}
	switch {
	case r.URL.Path == "/healthz":
		w.Write([]byte("ok"))
		return
	case strings.HasPrefix(r.URL.Path, "/containerLogs/"):
		if lt, ok := s.parseLogPath(r.URL.Path); ok && lt.node == i && r.Method == http.MethodGet {
			s.serveLogs(w, r, lt, false)
			return
		}
		http.NotFound(w, r)
		return
	case endpointOf(r.URL.Path) < 0:
		http.NotFound(w, r)
		return
	case r.Method != http.MethodGet && !(r.Method == http.MethodPost && r.URL.Path == "/stats/summary"):
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.answer(w, r, i, false)
}
