package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

// ErrStaleSession is a cloudcore's 200 with nothing after it: it holds a closed session for the
// node (seen on real cloudcore: sessions are never removed, so after a node's tunnel moved to
// another cloudcore, or dropped, the old one answers so for as long as it runs).
var ErrStaleSession = errors.New("200 with an empty body: this cloudcore holds only a closed tunnel session " +
	"for the node (its tunnel moved to another cloudcore or dropped)")

// Cloudcore sends each request to a cloudcore stream server with Host set to the node's
// address; cloudcore picks the node's tunnel session from that Host. With several cloudcores,
// a node's live tunnel is on one of them. One that never held it answers 500 (no session); one
// that held it before answers 200 with an empty body (a closed session). Either way the request
// moves on to the next endpoint; the one that answered with data is remembered for that node,
// and forgotten when it answers empty.
type Cloudcore struct {
	client  *http.Client
	timeout time.Duration

	mu        sync.Mutex
	endpoints []string
	preferred map[string]string // node → the cloudcore that last answered for it with data
}

// NewCloudcore builds the transport; endpoints may be empty until SetEndpoints. tlsCfg carries the CA (or InsecureSkipVerify) and the
// optional client certificate.
func NewCloudcore(endpoints []string, tlsCfg *tls.Config, maxConns int, timeout time.Duration) (*Cloudcore, error) {
	return &Cloudcore{
		endpoints: append([]string(nil), endpoints...),
		client:    &http.Client{Transport: NewHTTPTransport(tlsCfg, maxConns)},
		timeout:   timeout,
		preferred: map[string]string{},
	}, nil
}

// hostFor is what cloudcore looks the session up by: the InternalIP or the node name (cloudcore
// registers both keys) and the kubelet endpoint port. cloudcore takes the key from what precedes
// the first ':' of Host, so "[fd00::2]:10351" never matches: an IPv6 node goes by its name, as
// does a node without an InternalIP.
func hostFor(n discovery.Target) string {
	host := n.IP
	if host == "" || strings.Contains(host, ":") {
		host = n.Name
	}
	port := n.KubeletPort
	if port == 0 {
		port = kube.DefaultKubeletPort
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Get tries the node's preferred endpoint first and then the others. A request that runs out
// of time is not tried elsewhere: the cloudcore holding a live session for the node keeps the
// request open while its edge cannot reach the kubelet (seen), and the others have no live one.
func (c *Cloudcore) Get(ctx context.Context, n discovery.Target, path string) (*http.Response, error) {
	endpoints := c.Endpoints()
	if len(endpoints) == 0 {
		return nil, errors.New("no cloudcore endpoint known yet: transport.cloudcore.service has no ready endpoint")
	}
	start := c.start(n.Name)
	var errs []error
	for i := range endpoints {
		idx := (start + i) % len(endpoints)
		resp, err := c.try(ctx, endpoints[idx], n, path)
		if err == nil {
			c.remember(n.Name, endpoints[idx])
			return c.watchStale(resp, n.Name, endpoints[idx]), nil
		}
		errs = append(errs, fmt.Errorf("cloudcore %s: %w", endpoints[idx], err))
		if ctx.Err() != nil || !retryable(err) {
			break
		}
	}
	if ctx.Err() == nil {
		// Every cloudcore answered and none with data: the tunnel is elsewhere or gone. A
		// request that ran out of time leaves the node's cloudcore as it was: that one holds
		// the live session, and its edge is slow or cannot reach the kubelet.
		c.Forget(n.Name)
	}
	return nil, errors.Join(errs...)
}

func (c *Cloudcore) try(ctx context.Context, endpoint string, n discovery.Target, path string) (*http.Response, error) {
	req, err := newRequest(ctx, "https://"+endpoint+path, c.timeout)
	if err != nil {
		return nil, err
	}
	req.Host = hostFor(n)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	resp, err = checkStatus(resp)
	if err != nil || isStream(path) {
		return resp, err
	}
	return peekBody(resp)
}

// isStream: a followed log stream may stay quiet for long before its first byte, so its
// emptiness is found at its end (watchStale), not by waiting for it here.
func isStream(path string) bool { return strings.HasPrefix(path, "/containerLogs/") }

// peekBody waits for the first byte of a scrape's body: none at all is a closed session.
func peekBody(resp *http.Response) (*http.Response, error) {
	br := bufio.NewReaderSize(resp.Body, 512)
	if _, err := br.Peek(1); err != nil {
		resp.Body.Close()
		if errors.Is(err, io.EOF) {
			return nil, ErrStaleSession
		}
		return nil, fmt.Errorf("reading body: %w", err)
	}
	resp.Body = readCloser{br, resp.Body}
	return resp, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// watchStale makes a log stream that ends before its first byte an ErrStaleSession, and moves
// the node's preference past the cloudcore that answered it, so the resumed stream asks another.
func (c *Cloudcore) watchStale(resp *http.Response, name, endpoint string) *http.Response {
	resp.Body = &staleWatch{ReadCloser: resp.Body, stale: func() { c.avoid(name, endpoint) }}
	return resp
}

type staleWatch struct {
	io.ReadCloser
	got   bool
	stale func()
}

func (s *staleWatch) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if n > 0 {
		s.got = true
	}
	if errors.Is(err, io.EOF) && !s.got {
		s.stale()
		return n, ErrStaleSession
	}
	return n, err
}

// retryable: another cloudcore may hold the tunnel (5xx, or a closed session's empty 200) or be
// reachable (network errors); a 4xx would be the same everywhere.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code >= 500
	}
	return true
}

func (c *Cloudcore) start(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep, ok := c.preferred[name]; ok {
		for i, e := range c.endpoints {
			if e == ep {
				return i
			}
		}
	}
	return 0
}

// remember makes endpoint the node's first try.
func (c *Cloudcore) remember(name, endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.endpoints) > 0 && c.endpoints[0] == endpoint {
		delete(c.preferred, name)
		return
	}
	c.preferred[name] = endpoint
}

// avoid makes the endpoint after this one the node's first try.
func (c *Cloudcore) avoid(name, endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.endpoints {
		if e == endpoint {
			c.preferred[name] = c.endpoints[(i+1)%len(c.endpoints)]
			return
		}
	}
}

// Forget drops what is remembered about a node: it went away, or no cloudcore answered for it.
func (c *Cloudcore) Forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.preferred, name)
}

// Endpoints are the stream servers tried now.
func (c *Cloudcore) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints
}

// SetEndpoints replaces the stream servers (cloudcore replicas came or went); a node whose
// remembered cloudcore is gone starts from the first one again. An empty list is ignored: a
// Service without ready endpoints for a moment should not stop every scrape from being tried.
func (c *Cloudcore) SetEndpoints(endpoints []string) {
	if len(endpoints) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endpoints = append([]string(nil), endpoints...)
}

// Close releases idle connections.
func (c *Cloudcore) Close() { c.client.CloseIdleConnections() }
