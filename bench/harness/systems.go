package harness

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/edgetel/edgetel/bench/peers"
	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

// System is one program under test: how to configure and start it.
type System struct {
	Name   string
	Binary string
	// Args writes the system's configuration under p.DataDir's parent and returns its arguments.
	Args func(dir string, p peers.Params) ([]string, error)
	// Durable is true when the system keeps unsent data on disk across a restart.
	Durable bool
	// Pprof is true for systems that serve /debug/pprof on Params.PprofAddr.
	Pprof bool
	// TSDB, for a system that stores what it scrapes in a local TSDB instead of sending it, is
	// that TSDB's directory under Params.DataDir: it is counted once the system stops. Such a
	// system serves its own metrics on Params.TelemetryPort.
	TSDB string
	// Env is added to the system's environment.
	Env []string
}

// PrometheusAgent is Prometheus in agent mode.
func PrometheusAgent(bin string) System {
	return System{Name: "prometheus-agent", Binary: bin, Durable: true, Pprof: true, Args: func(dir string, p peers.Params) ([]string, error) {
		cfg, err := peers.Prometheus(p)
		if err != nil {
			return nil, err
		}
		path, err := writeFile(dir, "prometheus.yml", cfg)
		if err != nil {
			return nil, err
		}
		// Its web address serves /debug/pprof too.
		return []string{"--agent", "--config.file=" + path, "--storage.agent.path=" + p.DataDir,
			"--web.listen-address=" + p.PprofAddr, "--log.level=warn"}, nil
	}}
}

// VMAgent is VictoriaMetrics' vmagent.
func VMAgent(bin string) System {
	return System{Name: "vmagent", Binary: bin, Durable: true, Pprof: true, Args: func(dir string, p peers.Params) ([]string, error) {
		cfg, err := peers.VMAgent(p)
		if err != nil {
			return nil, err
		}
		path, err := writeFile(dir, "scrape.yml", cfg)
		if err != nil {
			return nil, err
		}
		// Its HTTP address serves /debug/pprof too.
		return []string{"-promscrape.config=" + path, "-remoteWrite.url=" + p.SinkURL,
			"-remoteWrite.tmpDataPath=" + p.DataDir, "-httpListenAddr=" + p.PprofAddr, "-loggerLevel=WARN"}, nil
	}}
}

// Otelcol is the upstream Collector built by OCB; durable persists its sending queue.
func Otelcol(bin string, durable bool) System {
	s := System{Name: "otelcol-upstream", Binary: bin, Durable: durable, Pprof: true}
	s.Args = func(dir string, p peers.Params) ([]string, error) {
		p.Durable = durable
		cfg, err := peers.Otelcol(p)
		if err != nil {
			return nil, err
		}
		path, err := writeFile(dir, "otelcol.yaml", cfg)
		if err != nil {
			return nil, err
		}
		return []string{"--config=" + path}, nil
	}
	return s
}

// Edgetelcol is edgetel's collector with the given transport (direct or cloudcore).
func Edgetelcol(bin, transport string, maxBytes int64) System {
	s := System{Name: "edgetelcol-" + transport, Binary: bin, Durable: true, Pprof: true}
	s.Args = func(dir string, p peers.Params) ([]string, error) {
		p.Transport = transport
		p.MaxBytes = maxBytes
		cfg, err := peers.Edgetelcol(p)
		if err != nil {
			return nil, err
		}
		path, err := writeFile(dir, "edgetelcol.yaml", cfg)
		if err != nil {
			return nil, err
		}
		return []string{"--config=" + path}, nil
	}
	return s
}

// WriteTargets writes a Prometheus file_sd file with every node's direct address, labelled with
// the node's name.
func WriteTargets(path string, f fleet.File) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := make([]group, 0, len(f.Nodes))
	for _, n := range f.Nodes {
		if n.Direct == "" {
			return fmt.Errorf("node %s has no direct address: start edgesim with Direct", n.Name)
		}
		groups = append(groups, group{Targets: []string{n.Direct}, Labels: map[string]string{"node": n.Name}})
	}
	data, err := json.Marshal(groups)
	if err != nil {
		return fmt.Errorf("encoding targets: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing targets: %w", err)
	}
	return nil
}

func writeFile(dir, name, content string) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	return path, nil
}

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// freePort is a loopback port free right now.
func freePort() (int, error) {
	addr, err := FreeAddr()
	if err != nil {
		return 0, err
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}
