// Package scrapeconv turns a Prometheus or OpenMetrics exposition into pmetric data, with a
// per-target cache of series so steady-state scrapes do not re-parse labels, and with
// Prometheus' staleness semantics across scrapes.
package scrapeconv

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
)

// Media types the converter parses.
const (
	MediaOpenMetrics = "application/openmetrics-text"
	MediaText        = "text/plain"
)

// Errors that fail a scrape before parsing; the receiver counts them by kind.
var (
	ErrEmptyBody = errors.New("empty body: nothing was relayed (a cloudcore holding a closed tunnel session answers an empty 200)")
	ErrTruncated = errors.New("truncated body: the last line has no newline")
	// ErrCut is a text body that ends at a line boundary short of the end of the kubelet's
	// exposition: cloudcore ends a relayed answer cleanly when the tunnel drops mid-body or the
	// edge meets a line over 64 KiB (its line scanner's limit), and the edge adds the final newline.
	ErrCut         = errors.New("body cut short")
	ErrMissingEOF  = errors.New("truncated OpenMetrics body: no final \"# EOF\" line")
	ErrUnsupported = errors.New("unsupported content type")
)

var eofLine = []byte("# EOF")

// MediaType decides how to parse body and checks that it arrived whole. cloudcore does not
// relay the edge's Content-Type (Go sniffs text/plain), so an OpenMetrics body is also
// recognised by its "# EOF" line.
func MediaType(body []byte, contentType string) (string, error) {
	if len(body) == 0 {
		return "", ErrEmptyBody
	}
	declared := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err == nil {
			declared = mt
		}
	}
	switch {
	case declared == MediaOpenMetrics || bytes.Equal(lastLine(body), eofLine):
		if !bytes.Equal(lastLine(body), eofLine) {
			return "", ErrMissingEOF
		}
		return MediaOpenMetrics, nil
	case declared == "" || declared == MediaText:
		if body[len(body)-1] != '\n' {
			return "", ErrTruncated
		}
		return MediaText, nil
	default:
		return "", fmt.Errorf("%w %q", ErrUnsupported, contentType)
	}
}

// lastLine is the last non-empty line of b, without its newline.
func lastLine(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

// CheckTextEnd checks that a text-format body ends where a kubelet's exposition ends, and returns
// the family it ends with, for the next body's check. The kubelet (client_golang) writes every
// family whole, with at least one sample, sorted by name, so a body is cut when:
//   - its last line is a family's "# HELP"/"# TYPE" line: a family without samples;
//   - its last family is a histogram or summary and the last line is not its "_count" sample;
//   - it ends at a family sorting before prevLast, the family the last complete body ended
//     with, and prevLast is not in it (a family that went away is not a cut).
//
// What it cannot see: a cut between two series of the last family, and, on a target's first
// scrape (no prevLast), a cut before the last family at a counter or gauge.
func CheckTextEnd(body []byte, prevLast string) (string, error) {
	last := lastLine(body)
	if bytes.HasPrefix(last, []byte("#")) {
		return "", fmt.Errorf("%w: it ends with a family's header line and none of its samples: %.120q", ErrCut, last)
	}
	name, typ, ok := lastType(body)
	if !ok {
		return "", nil
	}
	if (typ == "histogram" || typ == "summary") && !isCount(last, name) {
		return "", fmt.Errorf("%w: it ends inside %s %s, before its _count sample", ErrCut, typ, name)
	}
	if prevLast != "" && name < prevLast && !bytes.Contains(body, []byte("# TYPE "+prevLast+" ")) {
		return "", fmt.Errorf("%w: it ends at family %s, and the previous body went on to %s", ErrCut, name, prevLast)
	}
	return name, nil
}

var typePrefix = []byte("# TYPE ")

// lastType is the name and type of the body's last "# TYPE" line.
func lastType(body []byte) (name, typ string, ok bool) {
	i := bytes.LastIndex(body, []byte("\n# TYPE "))
	switch {
	case i >= 0:
		i++
	case bytes.HasPrefix(body, typePrefix):
		i = 0
	default:
		return "", "", false
	}
	line := body[i+len(typePrefix):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) != 2 {
		return "", "", false
	}
	return string(f[0]), string(f[1]), true
}

func isCount(line []byte, family string) bool {
	rest, ok := bytes.CutPrefix(line, []byte(family+"_count"))
	return ok && len(rest) > 0 && (rest[0] == '{' || rest[0] == ' ')
}
