package harness

import (
	"fmt"
	"io"
	"strings"
)

// Table renders rows as a Markdown table, each figure followed by its ratio to the baseline row
// (the first row whose system starts with baseline). Ratios read "x times edgetelcol's value".
func Table(w io.Writer, rows []Row, baseline string) {
	var base *Row
	for i := range rows {
		if strings.HasPrefix(rows[i].System, baseline) && rows[i].Samples > 0 {
			base = &rows[i]
			break
		}
	}
	fmt.Fprintln(w, "| system | samples/s | CPU s per 1M samples | peak RSS | peak RSS by the end of the warm-up (start-up) | active series | RSS per series | live heap per series | served | lost (exact) | notes |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range rows {
		ratio := func(v, b float64) string {
			if base == nil || b == 0 || v == 0 {
				return ""
			}
			return fmt.Sprintf(" (%.2fx)", v/b)
		}
		var b Row
		if base != nil {
			b = *base
		}
		lost := "–"
		if r.Lost >= 0 {
			lost = fmt.Sprint(r.Lost)
		}
		live := "–"
		if r.LiveHeap > 0 && r.Series > 0 {
			perSeries := float64(r.LiveHeap) / float64(r.Series)
			live = fmt.Sprintf("%.0f B", perSeries)
			if b.LiveHeap > 0 && b.Series > 0 {
				live += ratio(perSeries, float64(b.LiveHeap)/float64(b.Series))
			}
		}
		fmt.Fprintf(w, "| %s | %.0f%s | %.2f%s | %s%s | %s%s | %d | %.0f B%s | %s | %d | %s | %s |\n", r.System,
			r.SamplesPerSec, ratio(r.SamplesPerSec, b.SamplesPerSec),
			r.CPUPerMillion, ratio(r.CPUPerMillion, b.CPUPerMillion),
			mib(r.PeakRSS), ratio(float64(r.PeakRSS), float64(b.PeakRSS)),
			mib(r.StartupRSS), ratio(float64(r.StartupRSS), float64(b.StartupRSS)),
			r.Series, r.RSSPerSeries, ratio(r.RSSPerSeries, b.RSSPerSeries), live, r.Served, lost, r.Note)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// OutageRow is one system's outage benchmark.
type OutageRow struct {
	System      string
	Killed      bool    // SIGKILLed and restarted in the middle of the outage
	LiveRate    float64 // samples/s before the outage
	Served      int64   // (series, timestamp) pairs edgesim served over the whole run
	Lost        int64   // of those, the ones that never reached the sink (exact)
	Backlog     int64   // pairs served and not delivered when the sink came back
	DiskPeak    int64   // the data directory's peak size during the outage
	Drain       float64 // seconds from the sink's return to the backlog being delivered; <0: not drained
	DrainRate   float64 // backlog / drain time, samples/s
	DrainFactor float64 // outage length / drain time: how many times the live rate the backlog drained at
	Note        string
}

// OutageTable renders outage rows as Markdown.
func OutageTable(w io.Writer, rows []OutageRow) {
	fmt.Fprintln(w, "| system | SIGKILL mid-outage | live samples/s | samples served | lost (exact) | backlog | peak disk | drain time | drain rate | drain rate / live rate | notes |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, r := range rows {
		drain, rate, factor := "not drained", "", ""
		if r.Drain >= 0 {
			drain, rate, factor = fmt.Sprintf("%.0f s", r.Drain), fmt.Sprintf("%.0f/s", r.DrainRate), fmt.Sprintf("%.1fx", r.DrainFactor)
		}
		killed := "no"
		if r.Killed {
			killed = "yes"
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %d | %d | %d | %s | %s | %s | %s | %s |\n", r.System, killed, r.LiveRate, r.Served, r.Lost,
			r.Backlog, mib(r.DiskPeak), drain, rate, factor, r.Note)
	}
}
