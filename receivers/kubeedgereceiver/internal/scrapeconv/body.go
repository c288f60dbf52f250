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
	ErrEmptyBody   = errors.New("empty body: the edge node did not answer (cloudcore relays a failed edge as an empty 200)")
	ErrTruncated   = errors.New("truncated body: the last line has no newline (cloudcore relays a failed edge as a cut-off 200)")
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
