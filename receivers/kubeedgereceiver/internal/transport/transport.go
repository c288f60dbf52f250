// Package transport reaches a node's kubelet endpoints: through cloudcore's stream server,
// through the API server's node proxy, or directly.
package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

// AcceptHeader asks for OpenMetrics first: its mandatory "# EOF" is the only reliable sign that
// cloudcore relayed the whole body.
const AcceptHeader = "application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// Transport performs a GET of path on a node.
type Transport interface {
	Get(ctx context.Context, n discovery.Target, path string) (*http.Response, error)
	// Close releases idle connections.
	Close()
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("HTTP status %d with an empty body", e.Code)
	}
	return fmt.Sprintf("HTTP status %d: %s", e.Code, e.Body)
}

// NewHTTPTransport is the shared connection pool: keep-alive, many idle connections per host
// because all nodes behind one cloudcore share it, HTTP/2 when the server offers it. The idle
// pool has no total bound: with one address per node (direct) a bound below the node count would
// close and redial connections every round.
func NewHTTPTransport(tlsCfg *tls.Config, maxConns int) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func newRequest(ctx context.Context, url string, timeout time.Duration) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", AcceptHeader)
	req.Header.Set("User-Agent", "edgetel-kubeedge-receiver")
	if timeout > 0 {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
	}
	return req, nil
}

// checkStatus turns a non-2xx response into a StatusError, reading a little of its body for the
// message and closing it.
func checkStatus(resp *http.Response) (*http.Response, error) {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return nil, &StatusError{Code: resp.StatusCode, Body: string(body)}
}
