package scrapeconv

import (
	"bytes"
	"hash/maphash"
	"math"
	"strconv"
	"unsafe"

	"github.com/prometheus/prometheus/model/value"

	"github.com/edgetel/edgetel/internal/flatindex"
)

// The fast path reads a text body whose every series this converter has seen before, which is
// what a target serves scrape after scrape. For such a line the work left is to find where the
// series text ends, look it up by hash and read the value: the labels were parsed, relabelled
// and resolved when the series was new. It accepts only what it is sure Prometheus' parser reads
// the same way (the canonical `series value [timestamp]\n` with single spaces, comment lines
// seen in the last fully parsed body, blank lines); anything else, a new series included,
// makes the scrape start over with the full parser, which then has the final word.

// parseFast reports whether it read the whole body.
func (c *Converter) parseFast(body []byte, scrapeMs int64, st *Stats) bool {
	// A NUL ends a body early for Prometheus' lexer in some places and not in others.
	if len(c.seriesAt) == 0 || bytes.IndexByte(body, 0) >= 0 {
		return false
	}
	for len(body) > 0 {
		nl := bytes.IndexByte(body, '\n')
		if nl < 0 {
			return false
		}
		line := body[:nl]
		body = body[nl+1:]
		switch {
		case len(line) == 0:
			continue
		case line[0] == '#':
			if _, ok := c.comments[maphash.Bytes(c.seed, line)]; !ok {
				return false
			}
			continue
		}
		if !c.fastSample(line, scrapeMs, st) {
			return false
		}
	}
	return true
}

func (c *Converter) fastSample(line []byte, scrapeMs int64, st *Stats) bool {
	end := seriesEnd(line)
	if end <= 0 || end >= len(line) || line[end] != ' ' {
		return false
	}
	s, ok := flatindex.Find(&c.series, c.seriesAt, maphash.Bytes(c.seed, line[:end]))
	if !ok {
		return false
	}
	val, tsText, hasTS := bytes.Cut(line[end+1:], []byte{' '})
	var ts int64
	var tsp *int64
	if hasTS {
		var ok bool
		if ts, ok = parseTimestamp(tsText); !ok {
			return false
		}
		tsp = &ts
	}
	v, ok := parseValue(val)
	if !ok {
		return false
	}
	st.Scraped++
	if c.checkSeries(st) != nil {
		return false // the full parser reports it
	}
	_, err := c.observe(s, tsp, v, scrapeMs, st)
	return err == nil
}

// seriesEnd is where the series text of a sample line would end: after the line's last '}' when
// it has one (in a valid line no value or timestamp holds one), else at its first space. The candidate
// needs no checking here: it is used only if it is in the cache, and only text the full parser
// read as a whole series is. Given the same bytes from the start of a line, Prometheus' lexer
// ends the series at the same place, whatever follows.
func seriesEnd(line []byte) int {
	if i := bytes.LastIndexByte(line, '}'); i >= 0 {
		return i + 1
	}
	return bytes.IndexByte(line, ' ')
}

// parseValue reads a sample value as Prometheus' text parser does: a token without '{' or tabs,
// no Go 1.13 float forms (hex exponents, underscores), NaN made the canonical NaN.
func parseValue(b []byte) (float64, bool) {
	if len(b) == 0 || bytes.ContainsAny(b, "{\tpP_") {
		return 0, false
	}
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
	if err != nil {
		return 0, false
	}
	if math.IsNaN(v) {
		v = math.Float64frombits(value.NormalNaN)
	}
	return v, true
}

// parseTimestamp reads digits only, as the lexer's timestamp token is.
func parseTimestamp(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	ts, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(b), len(b)), 10, 64)
	return ts, err == nil
}

// restart begins the scrape again after the fast path gave up: a new generation, so that what
// it recorded counts for nothing.
func (c *Converter) restart(st *Stats) {
	c.gen++
	c.order = c.order[:0]
	*st = Stats{}
}

// learnComments remembers the comment lines of a text body the full parser read without error.
func (c *Converter) learnComments(body []byte) {
	clear(c.comments)
	if bytes.IndexByte(body, 0) >= 0 {
		return
	}
	for len(body) > 0 {
		line, rest, _ := bytes.Cut(body, []byte{'\n'})
		if len(line) > 0 && line[0] == '#' {
			c.comments[maphash.Bytes(c.seed, line)] = struct{}{}
		}
		body = rest
	}
}
