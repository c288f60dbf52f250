package transport

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

// APIServer goes through the API server's node proxy, /api/v1/nodes/<name>/proxy/<path>. The
// node name carries no port: the API server passes this path to cloudcore in X-Forwarded-Uri,
// and cloudcore takes the session key from its 5th segment.
type APIServer struct {
	base    string
	client  *http.Client
	timeout time.Duration
}

// NewAPIServer uses cfg's host, credentials (token files are re-read as they rotate) and TLS.
func NewAPIServer(cfg *rest.Config, timeout time.Duration) (*APIServer, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("API server client: %w", err)
	}
	base := cfg.Host
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	return &APIServer{base: strings.TrimRight(base, "/") + cfg.APIPath, client: client, timeout: timeout}, nil
}

// ProxyPath is the node proxy path of a kubelet path.
func ProxyPath(node, path string) string {
	return "/api/v1/nodes/" + url.PathEscape(node) + "/proxy" + path
}

// Get fetches path from node through the proxy.
func (a *APIServer) Get(ctx context.Context, n discovery.Target, path string) (*http.Response, error) {
	req, err := newRequest(ctx, a.base+ProxyPath(n.Name, path), a.timeout)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	return checkStatus(resp)
}

// Close releases idle connections.
func (a *APIServer) Close() { a.client.CloseIdleConnections() }
