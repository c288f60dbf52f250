package edgesim

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startAdmin serves the admin API on a loopback address.
func (s *Sim) startAdmin() error {
	ln, err := net.Listen("tcp", s.cfg.AdminListen)
	if err != nil {
		return fmt.Errorf("edgesim: admin listener: %w", err)
	}
	s.adminLn = ln
	srv := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.serve(srv, func() error { return srv.Serve(ln) })
	return nil
}

// checkLoopback refuses an admin address that is not on the loopback interface.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("admin listen %q: the admin API binds only to a loopback address", addr)
	}
	return nil
}

// NodeStatus is a node as the admin API reports it.
type NodeStatus struct {
	Name      string        `json:"name"`
	IP        string        `json:"ip"`
	Direct    string        `json:"direct,omitempty"`
	Connected bool          `json:"connected"`
	Pods      int           `json:"pods"`
	Closed    bool          `json:"tunnel_closed,omitempty"`
	Malformed bool          `json:"malformed,omitempty"`
	Explosion int           `json:"explosion,omitempty"`
	SlowBody  time.Duration `json:"slow_body_ns,omitempty"`
}

// AdminHandler is the admin API (see cmd/edgesim/README.md). Every mutation is a POST whose
// parameters come from the query string or a form body; answers are JSON.
func (s *Sim) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.Handle("GET /metrics", s.cloudcoreMetrics())
	mux.HandleFunc("GET /api/fleet", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Fleet()) })
	mux.HandleFunc("GET /api/nodes", s.adminNodes)
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Stats()) })
	mux.HandleFunc("POST /api/disconnect", s.adminDisconnect)
	mux.HandleFunc("POST /api/reconnect", s.adminReconnect)
	mux.HandleFunc("POST /api/latency", func(w http.ResponseWriter, r *http.Request) {
		d, ok := durationParam(w, r, "duration")
		if ok {
			s.SetLatency(d)
			writeJSON(w, map[string]string{"latency": d.String()})
		}
	})
	mux.HandleFunc("POST /api/error-rate", func(w http.ResponseWriter, r *http.Request) {
		v, err := strconv.ParseFloat(r.FormValue("rate"), 64)
		if err != nil || v < 0 || v > 1 {
			adminError(w, http.StatusBadRequest, "rate: want a number in [0, 1], got %q", r.FormValue("rate"))
			return
		}
		s.SetErrorRate(v)
		writeJSON(w, map[string]float64{"error_rate": v})
	})
	mux.HandleFunc("POST /api/slow-body", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.nodeParam(w, r)
		if !ok {
			return
		}
		if d, ok := durationParam(w, r, "duration"); ok {
			s.SetSlowBody(name, d)
			writeJSON(w, map[string]string{"node": name, "slow_body": d.String()})
		}
	})
	mux.HandleFunc("POST /api/malformed", s.nodeSwitch("malformed", s.SetMalformed))
	mux.HandleFunc("POST /api/tunnel-closed", s.nodeSwitch("tunnel_closed", s.SetTunnelClosed))
	mux.HandleFunc("POST /api/kubelet-down", s.nodeSwitch("kubelet_down", s.SetKubeletDown))
	mux.HandleFunc("POST /api/long-line", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.nodeParam(w, r)
		if !ok {
			return
		}
		n, err := strconv.Atoi(r.FormValue("bytes"))
		if err != nil || n < 0 || n > maxLongLine {
			adminError(w, http.StatusBadRequest, "bytes: want an integer in [0, %d], got %q", maxLongLine, r.FormValue("bytes"))
			return
		}
		s.SetLongLine(name, n)
		writeJSON(w, map[string]any{"node": name, "long_line": n})
	})
	mux.HandleFunc("POST /api/move-tunnel", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.nodeParam(w, r)
		if !ok {
			return
		}
		to, err := strconv.Atoi(r.FormValue("cloudcore"))
		if err == nil {
			err = s.MoveTunnel(name, to)
		}
		if err != nil {
			adminError(w, http.StatusBadRequest, "cloudcore: want a replica index in [0, %d): %v", s.cfg.Cloudcores, err)
			return
		}
		writeJSON(w, map[string]any{"node": name, "cloudcore": to})
	})
	mux.HandleFunc("POST /api/explosion", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.nodeParam(w, r)
		if !ok {
			return
		}
		n, err := strconv.Atoi(r.FormValue("series"))
		if err != nil || n < 0 || n > 10_000_000 {
			adminError(w, http.StatusBadRequest, "series: want an integer in [0, 10000000], got %q", r.FormValue("series"))
			return
		}
		s.SetExplosion(name, n)
		writeJSON(w, map[string]any{"node": name, "series": n})
	})
	mux.HandleFunc("POST /api/advance", func(w http.ResponseWriter, r *http.Request) {
		n := 1
		if v := r.FormValue("steps"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 0 {
				adminError(w, http.StatusBadRequest, "steps: want a non-negative integer, got %q", v)
				return
			}
		}
		s.Advance(n)
		writeJSON(w, map[string]int64{"step": s.Step()})
	})
	mux.HandleFunc("GET /api/expected", func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.nodeParam(w, r)
		if !ok {
			return
		}
		path := r.FormValue("path")
		if endpointOf(path) < 0 {
			adminError(w, http.StatusBadRequest, "path: want one of %s, got %q", strings.Join(endpointPaths[:], ", "), path)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(s.Expected(name, path))
	})
	return mux
}

func (s *Sim) adminNodes(w http.ResponseWriter, r *http.Request) {
	f := s.Fleet()
	out := make([]NodeStatus, len(f.Nodes))
	for i, n := range f.Nodes {
		out[i] = NodeStatus{
			Name:      n.Name,
			IP:        n.IP,
			Direct:    n.Direct,
			Connected: !s.faults.disconnected[i].Load(),
			Closed:    s.faults.closed[i].Load(),
			Pods:      s.nodes[i].pods,
			Malformed: s.faults.malformed[i].Load(),
			Explosion: int(s.faults.explosion[i].Load()),
			SlowBody:  time.Duration(s.faults.slowBody[i].Load()),
		}
	}
	writeJSON(w, out)
}

func (s *Sim) adminDisconnect(w http.ResponseWriter, r *http.Request) {
	if v := r.FormValue("fraction"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			adminError(w, http.StatusBadRequest, "fraction: want a number in [0, 1], got %q", v)
			return
		}
		writeJSON(w, map[string][]string{"disconnected": s.DisconnectFraction(f)})
		return
	}
	names, ok := s.namesParam(w, r)
	if ok {
		s.Disconnect(names...)
		writeJSON(w, map[string][]string{"disconnected": names})
	}
}

func (s *Sim) adminReconnect(w http.ResponseWriter, r *http.Request) {
	if r.FormValue("all") == "true" {
		s.ReconnectAll()
		writeJSON(w, map[string]bool{"all": true})
		return
	}
	names, ok := s.namesParam(w, r)
	if ok {
		s.Reconnect(names...)
		writeJSON(w, map[string][]string{"reconnected": names})
	}
}

// namesParam reads nodes=a,b,c and rejects unknown names, so a typo never passes silently.
// namesParam reads the nodes parameter, or site: every node of that site.
func (s *Sim) namesParam(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	if site := r.FormValue("site"); site != "" {
		names := s.SiteNodes(site)
		if len(names) == 0 {
			adminError(w, http.StatusBadRequest, "site: no node of the fleet is in site %q", site)
			return nil, false
		}
		return names, true
	}
	var names []string
	for _, n := range strings.Split(r.FormValue("nodes"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		adminError(w, http.StatusBadRequest, "nodes: want a comma-separated list of node names or IPs (or site=<site>)")
		return nil, false
	}
	if bad := s.Unknown(names...); len(bad) > 0 {
		adminError(w, http.StatusBadRequest, "nodes: not in the fleet: %s", strings.Join(bad, ", "))
		return nil, false
	}
	return names, true
}

func (s *Sim) nodeParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	name := r.FormValue("node")
	if name == "" {
		adminError(w, http.StatusBadRequest, "node: missing")
		return "", false
	}
	if _, ok := s.byKey[name]; !ok {
		adminError(w, http.StatusBadRequest, "node: %q is not in the fleet", name)
		return "", false
	}
	return name, true
}

func durationParam(w http.ResponseWriter, r *http.Request, key string) (time.Duration, bool) {
	d, err := time.ParseDuration(r.FormValue(key))
	if err != nil || d < 0 {
		adminError(w, http.StatusBadRequest, "%s: want a non-negative Go duration such as 250ms, got %q", key, r.FormValue(key))
		return 0, false
	}
	return d, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}

// nodeSwitch serves a fault that a node has on or off: form fields node and on.
func (s *Sim) nodeSwitch(field string, set func(name string, on bool)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.nodeParam(w, r)
		if !ok {
			return
		}
		on, err := strconv.ParseBool(r.FormValue("on"))
		if err != nil {
			adminError(w, http.StatusBadRequest, "on: want true or false, got %q", r.FormValue("on"))
			return
		}
		set(name, on)
		writeJSON(w, map[string]any{"node": name, field: on})
	}
}

// cloudcoreMetrics serves what cloudcore's own metrics endpoint does (its monitor server): the
// one metric cloudcore registers, KubeEdge_CloudHub_connected_nodes, and the Go client's process
// and runtime collectors. One series for the simulated cloudcore, its replicas together.
func (s *Sim) cloudcoreMetrics() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "KubeEdge", Subsystem: "CloudHub", Name: "connected_nodes",
			Help: "Number of nodes that connected to the cloudHub instance",
		}, func() float64 { return float64(s.cfg.Nodes - len(s.Disconnected())) }))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
