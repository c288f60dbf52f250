package edgesim

import (
	"bytes"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A template is the captured body cut into literal bytes and slots. Rendering a node appends the
// literals and fills the slots (names, ids, values, timestamps) for that node and step: no
// parsing and no per-sample allocation, and one template serves every node.
type opKind uint8

const (
	opLit opKind = iota
	opNodeName
	opPodName
	opPodUID
	opContainerID // a: index of the container id within the pod
	opValue       // a: index into chunk.vals
	opTimestamp   // unix milliseconds: step time + off
	opTime        // RFC 3339: step time + off milliseconds
)

type op struct {
	kind opKind
	a, b int32
	off  int64
}

// chunk is a run of template text: one family's node-level lines, or one pod's lines of a family.
type chunk struct {
	lit  []byte
	ops  []op
	vals []valModel
}

// podInstance is one pod as a node runs it during a step.
type podInstance struct {
	tmpl int
	name []byte
	uid  []byte
	cids [][]byte
	v    valueCtx
}

// renderCtx carries what slots are filled with.
type renderCtx struct {
	node   []byte
	stepMs int64
	pod    *podInstance
	v      *valueCtx
	ts     [16]tsMemo // recently formatted timestamps: a cgroup's lines share one
}

type tsMemo struct {
	ts  int64
	n   int
	buf [20]byte
}

// appendTimestamp formats ts, reusing a recent formatting of the same value.
func (r *renderCtx) appendTimestamp(dst []byte, ts int64) []byte {
	m := &r.ts[ts&15]
	if m.n == 0 || m.ts != ts {
		m.ts = ts
		m.n = len(strconv.AppendInt(m.buf[:0], ts, 10))
	}
	return append(dst, m.buf[:m.n]...)
}

func (c *chunk) lits(s string) {
	if s == "" {
		return
	}
	start := int32(len(c.lit))
	c.lit = append(c.lit, s...)
	if n := len(c.ops); n > 0 && c.ops[n-1].kind == opLit && c.ops[n-1].b == start {
		c.ops[n-1].b = int32(len(c.lit))
		return
	}
	c.ops = append(c.ops, op{kind: opLit, a: start, b: int32(len(c.lit))})
}

func (c *chunk) slot(o op) { c.ops = append(c.ops, o) }

func (c *chunk) value(m valModel) {
	c.ops = append(c.ops, op{kind: opValue, a: int32(len(c.vals))})
	c.vals = append(c.vals, m)
}

// sub is a captured string that each node or pod replaces with its own.
type sub struct {
	s    string
	kind opKind
	arg  int32
}

// withSubs appends s, turning every occurrence of a sub into its slot. Longer subs win where they
// overlap (a static pod's name contains the node name).
func (c *chunk) withSubs(s string, subs []sub) {
	type match struct {
		pos int
		sub *sub
	}
	var ms []match
	for i := range subs {
		if subs[i].s == "" {
			continue
		}
		for from := 0; ; {
			j := strings.Index(s[from:], subs[i].s)
			if j < 0 {
				break
			}
			ms = append(ms, match{from + j, &subs[i]})
			from += j + len(subs[i].s)
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].pos != ms[j].pos {
			return ms[i].pos < ms[j].pos
		}
		return len(ms[i].sub.s) > len(ms[j].sub.s)
	})
	at := 0
	for _, m := range ms {
		if m.pos < at {
			continue
		}
		c.lits(s[at:m.pos])
		c.slot(op{kind: m.sub.kind, a: m.sub.arg})
		at = m.pos + len(m.sub.s)
	}
	c.lits(s[at:])
}

func (c *chunk) render(dst []byte, r *renderCtx) []byte {
	for i := range c.ops {
		o := &c.ops[i]
		switch o.kind {
		case opLit:
			dst = append(dst, c.lit[o.a:o.b]...)
		case opNodeName:
			dst = append(dst, r.node...)
		case opPodName:
			dst = append(dst, r.pod.name...)
		case opPodUID:
			dst = append(dst, r.pod.uid...)
		case opContainerID:
			dst = append(dst, r.pod.cids[o.a]...)
		case opValue:
			dst = appendValue(dst, &c.vals[o.a], r.v)
		case opTimestamp:
			dst = r.appendTimestamp(dst, r.stepMs+o.off)
		case opTime:
			dst = time.UnixMilli(r.stepMs+o.off).UTC().AppendFormat(dst, time.RFC3339)
		}
	}
	return dst
}

// textTemplate is a Prometheus text exposition split into families, each with node-level lines
// and lines per captured pod.
type textTemplate struct {
	families []textFamily
}

type textFamily struct {
	header []byte
	node   *chunk
	pods   []*chunk // by captured pod index; nil where the pod has no line in the family
}

// podIndex finds a captured pod by name.
type podIndex interface {
	index(name string) int
	subs(i int) []sub
	nodeSubs() []sub
}

// compileText builds a template from a capture. With pods nil every line is node-level.
func compileText(data []byte, pods podIndex, nodeName string, refMs int64) *textTemplate {
	t := &textTemplate{}
	var cur *textFamily
	var curName, curType string
	nodeSubs := []sub{{s: nodeName, kind: opNodeName}}
	for lineNo, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 3 && (f[1] == "HELP" || f[1] == "TYPE") {
				if cur == nil || f[2] != curName {
					t.families = append(t.families, textFamily{node: &chunk{}})
					cur = &t.families[len(t.families)-1]
					curName, curType = f[2], "untyped"
				}
				if f[1] == "TYPE" && len(f) >= 4 {
					curType = f[3]
				}
			}
			if cur == nil {
				continue
			}
			cur.header = append(cur.header, line...)
			cur.header = append(cur.header, '\n')
			continue
		}
		if cur == nil {
			t.families = append(t.families, textFamily{node: &chunk{}})
			cur = &t.families[len(t.families)-1]
		}
		target := cur.node
		subs := nodeSubs
		if pods != nil {
			if p := pods.index(labelValue(line, "pod")); p >= 0 {
				for len(cur.pods) <= p {
					cur.pods = append(cur.pods, nil)
				}
				if cur.pods[p] == nil {
					cur.pods[p] = &chunk{}
				}
				target = cur.pods[p]
				subs = pods.subs(p)
			}
		}
		addSample(target, line, subs, curName, curType, uint16(len(t.families)), lineNo, refMs)
	}
	return t
}

// addSample compiles `series value [timestamp]`.
func addSample(c *chunk, line string, subs []sub, family, typ string, famID uint16, lineNo int, refMs int64) {
	end := strings.IndexByte(line, ' ')
	if b := strings.IndexByte(line, '{'); b >= 0 && (end < 0 || b < end) {
		end = strings.LastIndexByte(line, '}') + 1
	}
	if end <= 0 {
		c.lits(line + "\n") // not a sample we understand: keep it verbatim
		return
	}
	fields := strings.Fields(line[end:])
	if len(fields) == 0 {
		c.lits(line + "\n")
		return
	}
	c.withSubs(line[:end], subs)
	c.lits(" ")
	v, err := strconv.ParseFloat(fields[0], 64)
	if m := modelFor(family, typ, v, famID, lineNo); err != nil || fixed(m) {
		c.lits(fields[0]) // never changes: part of the literal text, no slot to fill
	} else {
		c.value(m)
	}
	if len(fields) > 1 {
		ts, err := strconv.ParseInt(fields[1], 10, 64)
		if err == nil {
			c.lits(" ")
			c.slot(op{kind: opTimestamp, off: ts - refMs})
		} else {
			c.lits(" " + fields[1])
		}
	}
	c.lits("\n")
}

var constFragments = []string{"_spec_", "_info", "start_time", "ulimits", "_max", "limit", "machine_", "scrape_error", "capacity", "_total_bytes"}

func modelFor(family, typ string, v float64, famID uint16, lineNo int) valModel {
	m := valModel{
		base:     v,
		integral: v == math.Trunc(v) && math.Abs(v) < 1e15,
		phase:    uint8(mix(uint64(lineNo), 7) & 63),
		family:   famID,
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		m.model = modelConst
	case strings.HasSuffix(family, "_last_seen"):
		m.model = modelUnixSec
	case strings.HasSuffix(family, "_start_time_seconds"):
		m.model = modelStartSec
	case typ == "counter" || typ == "histogram" || typ == "summary":
		m.model = modelCounter
	default:
		m.model = modelGauge
		for _, f := range constFragments {
			if strings.Contains(family, f) {
				m.model = modelConst
			}
		}
	}
	return m
}

// fixed reports a value that renders the same at every step: constants, and zero counters and
// gauges (scaling zero keeps zero). Two thirds of cAdvisor's samples are zero.
func fixed(m valModel) bool {
	return m.model == modelConst || (m.base == 0 && (m.model == modelCounter || m.model == modelGauge))
}

// labelValue returns the value of label name in a sample line, "" when absent.
func labelValue(line, name string) string {
	for from := 0; ; {
		i := strings.Index(line[from:], name+`="`)
		if i < 0 {
			return ""
		}
		i += from
		if i > 0 && (line[i-1] == '{' || line[i-1] == ',') {
			rest := line[i+len(name)+2:]
			if j := strings.IndexByte(rest, '"'); j >= 0 {
				return rest[:j]
			}
			return ""
		}
		from = i + 1
	}
}

// render writes the exposition of a node: every family's node lines, then each pod's.
func (t *textTemplate) render(dst []byte, r *renderCtx, nodeV *valueCtx, pods []podInstance) []byte {
	for i := range t.families {
		f := &t.families[i]
		dst = append(dst, f.header...)
		r.v = nodeV
		dst = f.node.render(dst, r)
		for j := range pods {
			p := &pods[j]
			if p.tmpl < len(f.pods) && f.pods[p.tmpl] != nil {
				r.pod, r.v = p, &p.v
				dst = f.pods[p.tmpl].render(dst, r)
			}
		}
	}
	return dst
}

// maxTimestamp is the newest sample timestamp of a capture: the capture's "now".
func maxTimestamp(data []byte) int64 {
	var max int64
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := bytes.Fields(line[bytes.LastIndexByte(line, '}')+1:])
		if bytes.IndexByte(line, '}') < 0 && len(f) > 0 {
			f = f[1:] // no labels: drop the metric name
		}
		if len(f) >= 2 {
			if ts, err := strconv.ParseInt(string(f[1]), 10, 64); err == nil && ts > max {
				max = ts
			}
		}
	}
	return max
}
