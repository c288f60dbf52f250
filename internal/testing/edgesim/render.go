package edgesim

import (
	"bytes"
	"io"
	"strconv"
	"sync/atomic"
)

// pods returns the pods node i runs during step: each of its slots holds one pod at a time, and a
// slot's pod is replaced (new name, uid, container ids; counters restart) when its lifetime ends.
func (s *Sim) pods(i int, step int64) []podInstance {
	n := &s.nodes[i]
	out := make([]podInstance, n.pods)
	for j := range out {
		slot := uint64(j) << 8
		life := 40 + int64(mix(n.hash, slot|1)%400)
		off := int64(mix(n.hash, slot|2) % uint64(life))
		gen := (step + off) / life
		h := mix(n.hash, uint64(j)<<32|uint64(gen))
		tmpl := s.tmpl.eligible[h%uint64(len(s.tmpl.eligible))]
		cp := &s.tmpl.pods[tmpl]
		p := &out[j]
		p.tmpl = tmpl
		p.name = append(append([]byte(cp.prefix), '-'), appendSuffix(nil, mix(h, 1), 5)...)
		if len(cp.uid) == 36 {
			p.uid = appendUUID(nil, mix(h, 2))
		} else {
			p.uid = appendHex(nil, mix(h, 2), len(cp.uid))
		}
		p.cids = make([][]byte, len(cp.cids))
		for k := range p.cids {
			p.cids[k] = appendHex(nil, mix(h, uint64(k)+3), 64)
		}
		p.v = valueCtx{
			step:     step,
			age:      (step+off)%life + 1,
			scale:    n.scale * (0.7 + 0.6*unit(mix(h, 100))),
			instance: h,
		}
	}
	return out
}

// variant is what besides the step changes a node's rendered body: its malformed fault (the
// explosion is streamed after it, see writeExplosion).
func (s *Sim) variant(i int) uint64 {
	if s.faults.malformed[i].Load() {
		return 1
	}
	return 0
}

// render appends node i's body for endpoint ep at step.
func (s *Sim) render(dst []byte, i, ep int, step int64) []byte {
	n := &s.nodes[i]
	stepMs := s.stepTime(step)
	nodeV := valueCtx{
		step:     step,
		age:      n.age + step,
		scale:    n.scale,
		instance: n.hash,
		unixSec:  float64(stepMs) / 1000,
		refSec:   float64(s.tmpl.refMs) / 1000,
		stepSec:  s.cfg.Step.Seconds(),
	}
	pods := s.pods(i, step)
	for j := range pods {
		pods[j].v.unixSec, pods[j].v.refSec, pods[j].v.stepSec = nodeV.unixSec, nodeV.refSec, nodeV.stepSec
	}
	r := &renderCtx{node: n.name, stepMs: stepMs}
	start := len(dst)
	switch ep {
	case epMetrics:
		dst = s.tmpl.kubelet.render(dst, r, &nodeV, nil)
	case epCadvisor:
		dst = s.tmpl.cadvisor.render(dst, r, &nodeV, pods)
	case epResource:
		dst = s.tmpl.resource.render(dst, r, &nodeV, pods)
	case epSummary:
		dst = s.tmpl.summary.render(dst, r, &nodeV, pods)
	case epProbes:
		dst = s.renderProbes(dst, i, pods)
	}
	if ep == epSummary {
		if s.faults.malformed[i].Load() {
			dst = malformJSON(dst, start)
		}
		return dst
	}
	if s.faults.malformed[i].Load() {
		dst = malformText(dst, start)
	}
	return dst
}

// renderProbes is the kubelet's /metrics/probes: one liveness and one readiness counter per container.
func (s *Sim) renderProbes(dst []byte, i int, pods []podInstance) []byte {
	dst = append(dst, "# HELP prober_probe_total [ALPHA] Cumulative number of a liveness, readiness or startup probe for a container by result.\n# TYPE prober_probe_total counter\n"...)
	for j := range pods {
		p := &pods[j]
		cp := &s.tmpl.pods[p.tmpl]
		for _, typ := range []string{"Liveness", "Readiness"} {
			dst = append(dst, `prober_probe_total{container="`...)
			dst = append(dst, cp.prefix...)
			dst = append(dst, `",namespace="`...)
			dst = append(dst, cp.namespace...)
			dst = append(dst, `",pod="`...)
			dst = append(dst, p.name...)
			dst = append(dst, `",pod_uid="`...)
			dst = append(dst, p.uid...)
			dst = append(dst, `",probe_type="`...)
			dst = append(dst, typ...)
			dst = append(dst, `",result="successful"} `...)
			dst = strconv.AppendInt(dst, p.v.age*3, 10)
			dst = append(dst, '\n')
		}
	}
	return dst
}

// explosionHeader starts the series of the explosion fault.
const explosionHeader = "# HELP edgesim_exploded_series Extra unique series of edgesim's series-explosion fault.\n# TYPE edgesim_exploded_series gauge\n"

// appendExplosion appends the explosion's series [from, to) at step. They are new at every
// step, as a cardinality bomb's are (a request ID or a timestamp in a label): nothing a scraper
// learnt from the last body helps.
func appendExplosion(dst, node []byte, from, to int, step int64) []byte {
	for k := from; k < to; k++ {
		dst = append(dst, `edgesim_exploded_series{node="`...)
		dst = append(dst, node...)
		dst = append(dst, `",series="`...)
		dst = strconv.AppendInt(dst, int64(k), 10)
		dst = append(dst, `",step="`...)
		dst = strconv.AppendInt(dst, step, 10)
		dst = append(dst, "\"} 1\n"...)
	}
	return dst
}

// explosionChunk is how many of the explosion's series are rendered per write.
const explosionChunk = 16 << 10

// writeExplosion streams node i's explosion series for ep after its body, a chunk at a time,
// and stops when the scraper stops reading: a bomb of a million series is a 70 MB body that
// the scraper cuts at its body limit, and rendering all of it up front would cost edgesim the
// CPU that the other simulated nodes need (a real bomb node has a CPU of its own).
func (s *Sim) writeExplosion(w io.Writer, i, ep int, step int64) {
	series := int(s.faults.explosion[i].Load())
	if series <= 0 || ep == epSummary {
		return
	}
	buf := append(make([]byte, 0, explosionChunk*80), explosionHeader...)
	for from := 0; from < series; from += explosionChunk {
		buf = appendExplosion(buf, s.nodes[i].name, from, min(from+explosionChunk, series), step)
		if _, err := w.Write(buf); err != nil {
			return
		}
		buf = buf[:0]
	}
}

// malformedLine is a sample Prometheus' text parser rejects: its label set is never closed.
const malformedLine = "edgesim_malformed{reason=\"unterminated label set\" 1\n"

// malformText puts malformedLine after the body's first family, so a parser fails mid-body.
func malformText(body []byte, start int) []byte {
	at := start
	if i := bytes.Index(body[start:], []byte("\n# HELP")); i >= 0 {
		if j := bytes.Index(body[start+i+1:], []byte("\n# HELP")); j >= 0 {
			at = start + i + 1 + j + 1
		}
	}
	out := append(body[:at:at], malformedLine...)
	return append(out, body[at:]...)
}

// malformJSON opens a second array where the pods array starts: the braces no longer balance.
func malformJSON(body []byte, start int) []byte {
	i := bytes.Index(body[start:], []byte(`"pods":[`))
	if i < 0 {
		return append(body, '}')
	}
	at := start + i + len(`"pods":[`)
	out := append(body[:at:at], '[')
	return append(out, body[at:]...)
}

// bodyCache keeps rendered bodies for reuse while their step lasts, within a byte budget.
type bodyCache struct {
	entries []atomic.Pointer[cacheEntry]
	bytes   atomic.Int64
	limit   int64
	sizes   [numEndpoints]atomic.Int64 // last body size per endpoint: a capacity hint
}

type cacheEntry struct {
	step    int64
	variant uint64
	body    []byte
	counts  sampleCounts
}

func (c *bodyCache) init(n int, limit int64) {
	c.entries = make([]atomic.Pointer[cacheEntry], n)
	c.limit = limit
}

func (c *bodyCache) get(key int, step int64, variant uint64) ([]byte, sampleCounts) {
	e := c.entries[key].Load()
	if e != nil && e.step == step && e.variant == variant {
		return e.body, e.counts
	}
	return nil, sampleCounts{}
}

// put keeps body if the budget allows; it reports whether the cache now owns body.
func (c *bodyCache) put(key int, step int64, variant uint64, body []byte, counts sampleCounts) bool {
	if c.limit <= 0 {
		return false
	}
	old := c.entries[key].Load()
	var oldLen int64
	if old != nil {
		oldLen = int64(cap(old.body))
	}
	if c.bytes.Load()-oldLen+int64(cap(body)) > c.limit {
		return false
	}
	if !c.entries[key].CompareAndSwap(old, &cacheEntry{step: step, variant: variant, body: body, counts: counts}) {
		return false
	}
	c.bytes.Add(int64(cap(body)) - oldLen)
	return true
}

// body returns node i's body for ep at step, its samples (text endpoints), and a release func
// to call once it is written.
func (s *Sim) body(i, ep int, step int64) ([]byte, sampleCounts, func()) {
	key := i*numEndpoints + ep
	variant := s.variant(i)
	if b, n := s.cache.get(key, step, variant); b != nil {
		return b, n, func() {}
	}
	buf := s.getBuf(ep)
	b := s.render((*buf)[:0], i, ep, step)
	var n sampleCounts
	if ep != epSummary {
		n = countSamples(b)
	}
	s.cache.sizes[ep].Store(int64(len(b)))
	if s.cache.put(key, step, variant, b, n) {
		return b, n, func() {}
	}
	*buf = b
	return b, n, func() { s.pool.Put(buf) }
}

func (s *Sim) getBuf(ep int) *[]byte {
	if b, ok := s.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, s.cache.sizes[ep].Load()*5/4+4096)
	return &b
}
