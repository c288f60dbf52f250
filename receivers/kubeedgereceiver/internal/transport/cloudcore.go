package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

// Cloudcore sends each request to a cloudcore stream server with Host set to the node's
// address; cloudcore picks the node's tunnel session from that Host. With several cloudcores,
// a node's tunnel lives on one of them; the others answer 500 (no session), so a request moves
// on to the next endpoint and the one that answered is remembered for that node.
type Cloudcore struct {
	endpoints []string
	client    *http.Client
	timeout   time.Duration

	mu        sync.Mutex
	preferred map[string]int
}

// NewCloudcore builds the transport. tlsCfg carries the CA (or InsecureSkipVerify) and the
// optional client certificate.
func NewCloudcore(endpoints []string, tlsCfg *tls.Config, maxConns int, timeout time.Duration) (*Cloudcore, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("no cloudcore endpoint")
	}
	return &Cloudcore{
		endpoints: endpoints,
		client:    &http.Client{Transport: NewHTTPTransport(tlsCfg, maxConns)},
		timeout:   timeout,
		preferred: map[string]int{},
	}, nil
}

// hostFor is what cloudcore looks the session up by: the InternalIP (or, without one, the node
// name, which cloudcore registers as a second key) and the kubelet endpoint port.
func hostFor(n discovery.Target) string {
	host := n.IP
	if host == "" {
		host = n.Name
	}
	port := n.KubeletPort
	if port == 0 {
		port = kube.DefaultKubeletPort
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Get tries the node's preferred endpoint first and then the others.
func (c *Cloudcore) Get(ctx context.Context, n discovery.Target, path string) (*http.Response, error) {
	start := c.start(n.Name)
	var errs []error
	for i := range c.endpoints {
		idx := (start + i) % len(c.endpoints)
		resp, err := c.try(ctx, c.endpoints[idx], n, path)
		if err == nil {
			c.remember(n.Name, idx)
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("cloudcore %s: %w", c.endpoints[idx], err))
		if ctx.Err() != nil || !retryable(err) {
			break
		}
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
	return checkStatus(resp)
}

// retryable: another cloudcore may hold the tunnel (5xx) or be reachable (network errors); a
// 4xx would be the same everywhere.
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
	return c.preferred[name]
}

func (c *Cloudcore) remember(name string, idx int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if idx == 0 {
		delete(c.preferred, name)
		return
	}
	c.preferred[name] = idx
}

// Forget drops what is remembered about a node that went away.
func (c *Cloudcore) Forget(name string) { c.remember(name, 0) }

// Close releases idle connections.
func (c *Cloudcore) Close() { c.client.CloseIdleConnections() }
