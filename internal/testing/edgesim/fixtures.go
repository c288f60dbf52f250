package edgesim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/edgetel/edgetel/internal/testing/edgesim/captures"
)

// Capture file names (internal/testing/edgesim/captures).
const (
	cadvisorFile = captures.Cadvisor
	resourceFile = captures.Resource
	kubeletFile  = captures.Kubelet
	summaryFile  = captures.Summary
)

// capturedPod is a pod of the capture, the model of the pods simulated nodes run.
type capturedPod struct {
	name, namespace string
	uid             string
	cids            []string // container ids (64 hex), in order of appearance
	prefix          string   // name without its generated suffix
	static          bool     // a control-plane static pod (its name ends with the node name): not run on edge nodes
}

// templates are every endpoint's template, shared by all nodes.
type templates struct {
	pods     []capturedPod
	byName   map[string]int
	eligible []int // pods an edge node may run
	nodeName string

	cadvisor, resource, kubelet *textTemplate
	summary                     *jsonTemplate
	refMs                       int64 // the capture's "now"
}

func (t *templates) index(name string) int {
	if i, ok := t.byName[name]; ok {
		return i
	}
	return -1
}

func (t *templates) nodeSubs() []sub { return []sub{{s: t.nodeName, kind: opNodeName}} }

func (t *templates) subs(i int) []sub {
	p := &t.pods[i]
	s := []sub{{s: t.nodeName, kind: opNodeName}, {s: p.name, kind: opPodName}, {s: p.uid, kind: opPodUID}}
	for k, id := range p.cids {
		s = append(s, sub{s: id, kind: opContainerID, arg: int32(k)})
	}
	return s
}

var (
	podUIDInID  = regexp.MustCompile(`/pod([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})`)
	containerID = regexp.MustCompile(`^[0-9a-f]{64}$`)
	genSuffix   = regexp.MustCompile(`-[a-z0-9]{5}$`)
)

// loadTemplates compiles the captures in capturesDir, or the embedded ones when it is empty.
func loadTemplates(capturesDir string) (*templates, error) {
	fsys, err := captures.FS(capturesDir)
	if err != nil {
		return nil, err
	}
	read := func(name string) ([]byte, error) {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("reading kubelet capture %s: %w", name, err)
		}
		return b, nil
	}
	cadvisor, err := read(cadvisorFile)
	if err != nil {
		return nil, err
	}
	resource, err := read(resourceFile)
	if err != nil {
		return nil, err
	}
	kubelet, err := read(kubeletFile)
	if err != nil {
		return nil, err
	}
	summary, err := read(summaryFile)
	if err != nil {
		return nil, err
	}
	var sum summaryFixture
	if err := json.Unmarshal(summary, &sum); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", summaryFile, err)
	}
	if sum.Node.NodeName == "" {
		return nil, fmt.Errorf("%s: no node.nodeName", summaryFile)
	}
	t := &templates{nodeName: sum.Node.NodeName, byName: map[string]int{}}
	t.collectPods(cadvisor)
	if len(t.eligible) == 0 {
		return nil, fmt.Errorf("%s: no pods found", cadvisorFile)
	}
	t.refMs = maxTimestamp(cadvisor)
	t.cadvisor = compileText(cadvisor, t, t.nodeName, t.refMs)
	t.resource = compileText(resource, t, t.nodeName, maxTimestamp(resource))
	kubeletNode := labelValue(string(findLine(kubelet, "kubelet_node_name{")), "node")
	t.kubelet = compileText(kubelet, nil, kubeletNode, 0)
	t.summary, err = compileSummary(summary, t)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func findLine(data []byte, prefix string) []byte {
	for _, line := range bytes.Split(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(prefix)) {
			return line
		}
	}
	return nil
}

// collectPods finds the captured pods with their uid and container ids in the cadvisor capture.
func (t *templates) collectPods(cadvisor []byte) {
	for _, line := range strings.Split(string(cadvisor), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name := labelValue(line, "pod")
		if name == "" {
			continue
		}
		i, ok := t.byName[name]
		if !ok {
			i = len(t.pods)
			t.byName[name] = i
			t.pods = append(t.pods, capturedPod{name: name, namespace: labelValue(line, "namespace")})
		}
		p := &t.pods[i]
		if m := podUIDInID.FindStringSubmatch(labelValue(line, "id")); m != nil && p.uid == "" {
			p.uid = m[1]
		}
		if id := labelValue(line, "name"); containerID.MatchString(id) && !contains(p.cids, id) {
			p.cids = append(p.cids, id)
		}
	}
	for i := range t.pods {
		p := &t.pods[i]
		switch {
		case strings.HasSuffix(p.name, "-"+t.nodeName):
			p.static = true
			p.prefix = strings.TrimSuffix(p.name, "-"+t.nodeName)
		case genSuffix.MatchString(p.name) && strings.Count(p.name, "-") > 1 || genSuffix.MatchString(p.name) && strings.Count(p.name, "-") == 1:
			p.prefix = p.name[:len(p.name)-6]
		default:
			p.prefix = p.name
		}
		if !p.static {
			t.eligible = append(t.eligible, i)
		}
	}
	sort.Ints(t.eligible)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// summaryFixture is the part of /stats/summary the template needs to find its way.
type summaryFixture struct {
	Node struct {
		NodeName string `json:"nodeName"`
	} `json:"node"`
}

// jsonTemplate is /stats/summary: the node object, then one object per pod.
type jsonTemplate struct {
	node *chunk
	pods []*chunk // by captured pod index
}

func compileSummary(data []byte, t *templates) (*jsonTemplate, error) {
	var raw struct {
		Node json.RawMessage   `json:"node"`
		Pods []json.RawMessage `json:"pods"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", summaryFile, err)
	}
	ref := latestTime(data)
	j := &jsonTemplate{node: &chunk{}, pods: make([]*chunk, len(t.pods))}
	if err := compileJSON(j.node, raw.Node, t.nodeSubs(), ref); err != nil {
		return nil, err
	}
	for _, p := range raw.Pods {
		var ref struct {
			PodRef struct {
				Name string `json:"name"`
			} `json:"podRef"`
		}
		if err := json.Unmarshal(p, &ref); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", summaryFile, err)
		}
		i := t.index(ref.PodRef.Name)
		if i < 0 {
			continue // a pod cadvisor did not see: no template to run it from
		}
		j.pods[i] = &chunk{}
		if err := compileJSON(j.pods[i], p, t.subs(i), latestTime(data)); err != nil {
			return nil, err
		}
	}
	return j, nil
}

var rfc3339 = regexp.MustCompile(`"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"`)

func latestTime(data []byte) time.Time {
	var max time.Time
	for _, m := range rfc3339.FindAllSubmatch(data, -1) {
		if ts, err := time.Parse(time.RFC3339, string(m[1])); err == nil && ts.After(max) {
			max = ts
		}
	}
	return max
}

var (
	summaryCounters = map[string]bool{"usageCoreNanoSeconds": true, "rxBytes": true, "rxErrors": true, "txBytes": true,
		"txErrors": true, "pageFaults": true, "majorPageFaults": true, "total": true}
	summaryConsts = map[string]bool{"capacityBytes": true, "inodes": true, "maxpid": true}
)

// compileJSON compacts a JSON value and cuts it into literals, name slots, number slots and time slots.
func compileJSON(c *chunk, raw []byte, subs []sub, ref time.Time) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return fmt.Errorf("compacting %s: %w", summaryFile, err)
	}
	s := buf.String()
	var lastKey string
	for i := 0; i < len(s); {
		switch ch := s[i]; {
		case ch == '"':
			end := i + 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			str := s[i+1 : end]
			isKey := end+1 < len(s) && s[end+1] == ':'
			if isKey {
				lastKey = str
				c.lits(s[i : end+1])
			} else if ts, err := time.Parse(time.RFC3339, str); err == nil {
				c.lits(`"`)
				c.slot(op{kind: opTime, off: ts.Sub(ref).Milliseconds()})
				c.lits(`"`)
			} else {
				c.lits(`"`)
				c.withSubs(str, subs)
				c.lits(`"`)
			}
			i = end + 1
		case ch == '-' || (ch >= '0' && ch <= '9'):
			end := i + 1
			for end < len(s) && strings.IndexByte("0123456789.eE+-", s[end]) >= 0 {
				end++
			}
			num := s[i:end]
			v, err := parseFloat(num)
			if err != nil {
				return fmt.Errorf("%s: number %q: %w", summaryFile, num, err)
			}
			m := valModel{base: v, integral: !strings.ContainsAny(num, ".eE"), phase: uint8(mix(uint64(i), 3) & 63), family: uint16(len(lastKey))}
			switch {
			case summaryCounters[lastKey]:
				m.model = modelCounter
			case summaryConsts[lastKey]:
				m.model = modelConst
			default:
				m.model = modelGauge
			}
			if fixed(m) {
				c.lits(num)
			} else {
				c.value(m)
			}
			i = end
		default:
			start := i
			for i < len(s) && s[i] != '"' && s[i] != '-' && (s[i] < '0' || s[i] > '9') {
				i++
			}
			c.lits(s[start:i])
		}
	}
	return nil
}

func (j *jsonTemplate) render(dst []byte, r *renderCtx, nodeV *valueCtx, pods []podInstance) []byte {
	dst = append(dst, `{"node":`...)
	r.v = nodeV
	dst = j.node.render(dst, r)
	dst = append(dst, `,"pods":[`...)
	first := true
	for i := range pods {
		p := &pods[i]
		if p.tmpl >= len(j.pods) || j.pods[p.tmpl] == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		r.pod, r.v = p, &p.v
		dst = j.pods[p.tmpl].render(dst, r)
	}
	return append(dst, "]}\n"...)
}
