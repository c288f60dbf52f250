package transport

import (
	"context"
	"crypto/tls"
	"net/http"
	"time"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

// DefaultDirectEndpoint is edged's read-only kubelet server (KubeEdge 1.12+): plain HTTP on
// loopback, no authentication.
const DefaultDirectEndpoint = "127.0.0.1:10350"

// Direct talks to the kubelet endpoint itself, for a collector on the edge node.
type Direct struct {
	scheme   string
	endpoint string
	client   *http.Client
	timeout  time.Duration
}

// NewDirect builds the transport; tlsCfg is used only with scheme https.
func NewDirect(scheme, endpoint string, tlsCfg *tls.Config, maxConns int, timeout time.Duration) *Direct {
	if endpoint == "" {
		endpoint = DefaultDirectEndpoint
	}
	if scheme != "https" {
		tlsCfg = nil
	}
	return &Direct{scheme: scheme, endpoint: endpoint, timeout: timeout,
		client: &http.Client{Transport: NewHTTPTransport(tlsCfg, maxConns)}}
}

// Get fetches path from the node's own address when it has one, else the configured endpoint.
func (d *Direct) Get(ctx context.Context, n discovery.Target, path string) (*http.Response, error) {
	endpoint := n.Direct
	if endpoint == "" {
		endpoint = d.endpoint
	}
	req, err := newRequest(ctx, d.scheme+"://"+endpoint+path, d.timeout)
	if err != nil {
		return nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	return checkStatus(resp)
}

// Close releases idle connections.
func (d *Direct) Close() { d.client.CloseIdleConnections() }
