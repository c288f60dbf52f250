package edgesim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/stretchr/testify/require"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// startSim starts a simulator on loopback; cfg's zero fields get test defaults.
func startSim(t testing.TB, cfg Config) *Sim {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.TLSDir == "" {
		cfg.TLSDir = t.TempDir()
	}
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { s.Close() })
	return s
}

// client is a keep-alive TLS client that trusts the simulator's CA.
func client(t testing.TB, s *Sim, withCert bool) *http.Client {
	cfg, err := s.TLSFiles().ClientConfig(withCert)
	require.NoError(t, err)
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: false}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// get asks cloudcore for path with Host set to host (and optional headers).
func get(t testing.TB, c *http.Client, s *Sim, host, path string, hdr ...string) (int, []byte) {
	t.Helper()
	code, body, err := tryGet(c, s, host, path, hdr...)
	require.NoError(t, err)
	return code, body
}

func tryGet(c *http.Client, s *Sim, host, path string, hdr ...string) (int, []byte, error) {
	return tryGetAt(c, s.Addr(), host, path, hdr...)
}

// tryGetAt is tryGet from the cloudcore replica at addr.
func tryGetAt(c *http.Client, addr, host, path string, hdr ...string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// parseText runs Prometheus' text parser over body and returns the samples by series.
func parseText(body []byte) (map[string]float64, error) {
	p, err := textparse.New(body, "text/plain; version=0.0.4", labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	var lset labels.Labels
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if e == textparse.EntrySeries {
			_, _, v := p.Series()
			p.Labels(&lset)
			k := lset.String()
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("series %s twice", k)
			}
			out[k] = v
		}
	}
}

func parseSummary(body []byte) (*statsapi.Summary, error) {
	var s statsapi.Summary
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	return &s, nil
}
