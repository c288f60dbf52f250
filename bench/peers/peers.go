// Package peers holds the configurations of the systems the benchmarks run (edgetelcol and the
// peers users would pick instead) and renders them for one run.
package peers

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
	"time"
)

//go:embed scrape.yml.tmpl prometheus/agent.yml.tmpl otelcol/config.yaml.tmpl edgetelcol.yaml.tmpl
var files embed.FS

var tmpl = template.Must(template.ParseFS(files, "*.tmpl", "*/*.tmpl"))

// Params are what a configuration is rendered from.
type Params struct {
	Interval, Timeout time.Duration
	TargetsFile       string // file_sd JSON with every node's direct address
	FleetFile         string // edgesim's fleet file (edgetelcol's file discovery)
	SinkURL           string
	DataDir           string // the system's buffer / WAL directory
	PprofAddr         string
	Transport         string // edgetelcol: direct or cloudcore
	CloudcoreAddr     string
	CloudcoreFirst    string // edgetelcol: a cloudcore endpoint tried before CloudcoreAddr
	CAFile            string
	Durable           bool  // upstream Collector: persist the sending queue
	MaxBytes          int64 // edgetelcol: buffer.max_bytes (0: the default)
	TelemetryPort     int   // edgetelcol: serve its own metrics on 127.0.0.1:port (0: none)

	Scrape, ScrapeIndented string // filled by Render
}

// Scrape renders the shared Prometheus scrape configuration.
func Scrape(p Params) (string, error) { return render("scrape.yml.tmpl", p) }

// Prometheus renders the Prometheus agent's configuration file.
func Prometheus(p Params) (string, error) { return withScrape("agent.yml.tmpl", p) }

// VMAgent renders vmagent's -promscrape.config (it takes remote write from flags).
func VMAgent(p Params) (string, error) { return Scrape(p) }

// Otelcol renders the upstream Collector's configuration.
func Otelcol(p Params) (string, error) { return withScrape("config.yaml.tmpl", p) }

// Edgetelcol renders edgetelcol's configuration.
func Edgetelcol(p Params) (string, error) { return render("edgetelcol.yaml.tmpl", p) }

func withScrape(name string, p Params) (string, error) {
	s, err := Scrape(p)
	if err != nil {
		return "", err
	}
	p.Scrape = s
	p.ScrapeIndented = indent(s, "      ")
	return render(name, p)
}

func render(name string, p Params) (string, error) {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, p); err != nil {
		return "", fmt.Errorf("rendering %s: %w", name, err)
	}
	return b.String(), nil
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n")
}
