package transport

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
)

var edge1 = discovery.Target{Node: kube.Node{Name: "edge-1", IP: "10.0.0.1", KubeletPort: 10351, Ready: kube.ReadyTrue}}

// cloudcore is a stream server that holds sessions for the given hosts only.
func cloudcore(t *testing.T, sessions ...string) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		for _, s := range sessions {
			if r.Host == s {
				_, _ = io.WriteString(w, "up 1\n")
				return
			}
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func tlsOf(srv *httptest.Server) *tls.Config {
	return srv.Client().Transport.(*http.Transport).TLSClientConfig
}

func get(t *testing.T, tr Transport, n discovery.Target, path string) (string, error) {
	resp, err := tr.Get(context.Background(), n, path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b), nil
}

func TestCloudcoreFailsOverToTheCloudcoreHoldingTheTunnel(t *testing.T) {
	without, hitsWithout := cloudcore(t)
	with, hitsWith := cloudcore(t, "10.0.0.1:10351")
	cc, err := NewCloudcore([]string{without.Listener.Addr().String(), with.Listener.Addr().String()}, tlsOf(with), 4, time.Second)
	require.NoError(t, err)
	defer cc.Close()

	body, err := get(t, cc, edge1, "/metrics")
	require.NoError(t, err)
	assert.Equal(t, "up 1\n", body)
	assert.Equal(t, int32(1), hitsWithout.Load())

	// The node's cloudcore is remembered: the next scrape goes straight there.
	_, err = get(t, cc, edge1, "/metrics")
	require.NoError(t, err)
	assert.Equal(t, int32(1), hitsWithout.Load())
	assert.Equal(t, int32(2), hitsWith.Load())
}

func TestCloudcoreAllFail(t *testing.T) {
	a, _ := cloudcore(t)
	b, _ := cloudcore(t)
	cc, err := NewCloudcore([]string{a.Listener.Addr().String(), b.Listener.Addr().String()}, tlsOf(a), 4, time.Second)
	require.NoError(t, err)
	_, err = get(t, cc, edge1, "/metrics")
	require.Error(t, err)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 500, se.Code)
	assert.Contains(t, err.Error(), a.Listener.Addr().String())
	assert.Contains(t, err.Error(), b.Listener.Addr().String())
}

func TestCloudcoreHostFallsBackToNodeName(t *testing.T) {
	srv, _ := cloudcore(t, "edge-2:10350")
	cc, err := NewCloudcore([]string{srv.Listener.Addr().String()}, tlsOf(srv), 4, time.Second)
	require.NoError(t, err)
	_, err = get(t, cc, discovery.Target{Node: kube.Node{Name: "edge-2"}}, "/metrics")
	require.NoError(t, err)
}

func TestCloudcoreRejectsUntrustedServer(t *testing.T) {
	srv, hits := cloudcore(t, "10.0.0.1:10351")
	cc, err := NewCloudcore([]string{srv.Listener.Addr().String()}, &tls.Config{MinVersion: tls.VersionTLS12}, 4, time.Second)
	require.NoError(t, err)
	_, err = get(t, cc, edge1, "/metrics")
	require.Error(t, err)
	assert.Zero(t, hits.Load())
}

func TestAPIServerProxyPath(t *testing.T) {
	var gotPath, gotAuth, gotAccept string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth, gotAccept = r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Accept")
		_, _ = io.WriteString(w, "up 1\n")
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	a, err := NewAPIServer(&rest.Config{Host: srv.URL, BearerToken: "sa-token", TLSClientConfig: rest.TLSClientConfig{CAData: ca}}, time.Second)
	require.NoError(t, err)
	defer a.Close()
	_, err = get(t, a, edge1, "/metrics/cadvisor")
	require.NoError(t, err)
	// No :port after the node name: cloudcore reads the name from X-Forwarded-Uri's 5th segment.
	assert.Equal(t, "/api/v1/nodes/edge-1/proxy/metrics/cadvisor", gotPath)
	assert.Equal(t, "Bearer sa-token", gotAuth)
	assert.True(t, strings.HasPrefix(gotAccept, "application/openmetrics-text"))
}

func TestDirect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path+"\n")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	d := NewDirect("http", addr, nil, 4, time.Second)
	body, err := get(t, d, edge1, "/metrics/resource")
	require.NoError(t, err)
	assert.Equal(t, "/metrics/resource\n", body)

	// A node's own direct address wins over the configured endpoint.
	d = NewDirect("http", "", nil, 4, time.Second)
	assert.Equal(t, DefaultDirectEndpoint, d.endpoint)
	n := edge1
	n.Direct = addr
	_, err = get(t, d, n, "/metrics")
	require.NoError(t, err)
}

func TestStatusErrorIsClear(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "edge busy")
	}))
	defer srv.Close()
	d := NewDirect("http", strings.TrimPrefix(srv.URL, "http://"), nil, 1, time.Second)
	_, err := get(t, d, edge1, "/metrics")
	require.EqualError(t, err, "HTTP status 503: edge busy")
}

// staleCloudcore answers 200 with an empty body for the given hosts, as a real cloudcore does
// for a node whose tunnel it held before, and 500 for the rest.
func staleCloudcore(t *testing.T, stale ...string) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		for _, s := range stale {
			if r.Host == s {
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestCloudcoreFollowsATunnelThatMoved(t *testing.T) {
	// edge-1's tunnel was on a and moved to b: a keeps the closed session.
	a, hitsA := cloudcore(t, "10.0.0.1:10351")
	b, hitsB := cloudcore(t)
	cc, err := NewCloudcore([]string{a.Listener.Addr().String(), b.Listener.Addr().String()}, tlsOf(a), 4, time.Second)
	require.NoError(t, err)
	defer cc.Close()
	_, err = get(t, cc, edge1, "/metrics")
	require.NoError(t, err)

	stale, hitsStale := staleCloudcore(t, "10.0.0.1:10351")
	live, hitsLive := cloudcore(t, "10.0.0.1:10351")
	cc.SetEndpoints([]string{stale.Listener.Addr().String(), live.Listener.Addr().String()})
	body, err := get(t, cc, edge1, "/metrics")
	require.NoError(t, err)
	assert.Equal(t, "up 1\n", body)
	assert.Equal(t, int32(1), hitsStale.Load())
	assert.Equal(t, int32(1), hitsLive.Load())
	// The live one is remembered.
	_, err = get(t, cc, edge1, "/metrics")
	require.NoError(t, err)
	assert.Equal(t, int32(1), hitsStale.Load())
	assert.Equal(t, int32(2), hitsLive.Load())
	assert.Equal(t, int32(1), hitsA.Load()+hitsB.Load())
}

func TestCloudcoreForgetsTheCloudcoreThatAnswersEmpty(t *testing.T) {
	a, hitsA := cloudcore(t)
	b, hitsB := cloudcore(t, "10.0.0.1:10351")
	cc, err := NewCloudcore([]string{a.Listener.Addr().String(), b.Listener.Addr().String()}, tlsOf(a), 4, time.Second)
	require.NoError(t, err)
	_, err = get(t, cc, edge1, "/metrics")
	require.NoError(t, err)
	require.Equal(t, int32(1), hitsA.Load())

	// The tunnel moved back to a; b now holds a closed session.
	cc.SetEndpoints(nil) // ignored: an empty list never replaces the endpoints
	require.Len(t, cc.Endpoints(), 2)
	a2, hitsA2 := cloudcore(t, "10.0.0.1:10351")
	b2, hitsB2 := staleCloudcore(t, "10.0.0.1:10351")
	cc.SetEndpoints([]string{a2.Listener.Addr().String(), b2.Listener.Addr().String()})
	_, err = get(t, cc, edge1, "/metrics")
	require.NoError(t, err)
	assert.Equal(t, int32(1), hitsA2.Load())
	assert.Zero(t, hitsB2.Load(), "b is gone from the list, so its preference is")
	assert.Equal(t, int32(1), hitsB.Load())
}

func TestCloudcoreAllStale(t *testing.T) {
	a, _ := staleCloudcore(t, "10.0.0.1:10351")
	b, _ := staleCloudcore(t, "10.0.0.1:10351")
	cc, err := NewCloudcore([]string{a.Listener.Addr().String(), b.Listener.Addr().String()}, tlsOf(a), 4, time.Second)
	require.NoError(t, err)
	_, err = get(t, cc, edge1, "/metrics")
	require.ErrorIs(t, err, ErrStaleSession)
	assert.Contains(t, err.Error(), "closed tunnel session")
}

func TestCloudcoreStaleLogStreamMovesOn(t *testing.T) {
	stale, hitsStale := staleCloudcore(t, "10.0.0.1:10351")
	live, hitsLive := cloudcore(t, "10.0.0.1:10351")
	cc, err := NewCloudcore([]string{stale.Listener.Addr().String(), live.Listener.Addr().String()}, tlsOf(live), 4, time.Second)
	require.NoError(t, err)
	path := "/containerLogs/ns/pod/c?follow=true"
	// A log stream is not peeked (it may be quiet for long): its empty end is the error...
	resp, err := cc.Get(context.Background(), edge1, path)
	require.NoError(t, err)
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.ErrorIs(t, err, ErrStaleSession)
	// ...and the stream reopened goes to the other cloudcore first.
	body, err := get(t, cc, edge1, path)
	require.NoError(t, err)
	assert.Equal(t, "up 1\n", body)
	assert.Equal(t, int32(1), hitsStale.Load())
	assert.Equal(t, int32(1), hitsLive.Load())
}

func TestCloudcoreHangingEdgeCostsOneTimeout(t *testing.T) {
	// The cloudcore holding the live session keeps the request while its edge cannot reach the
	// kubelet: no other cloudcore is asked, and the request ends at the caller's deadline.
	var hits atomic.Int32
	hang := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-r.Context().Done()
	}))
	defer hang.Close()
	other, hitsOther := cloudcore(t)
	cc, err := NewCloudcore([]string{hang.Listener.Addr().String(), other.Listener.Addr().String()}, tlsOf(hang), 4, time.Second)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = cc.Get(ctx, edge1, "/metrics")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, int32(1), hits.Load())
	assert.Zero(t, hitsOther.Load())
}

func TestCloudcoreIPv6NodeGoesByName(t *testing.T) {
	// cloudcore keys the session by what precedes the first ':' of Host: "[fd00::2]:10351"
	// would be looked up as "[fd00", so the name is sent.
	srv, _ := cloudcore(t, "edge-6:10351")
	cc, err := NewCloudcore([]string{srv.Listener.Addr().String()}, tlsOf(srv), 4, time.Second)
	require.NoError(t, err)
	n := discovery.Target{Node: kube.Node{Name: "edge-6", IP: "fd00::2", KubeletPort: 10351}}
	assert.Equal(t, "edge-6:10351", hostFor(n))
	_, err = get(t, cc, n, "/metrics")
	require.NoError(t, err)
}
