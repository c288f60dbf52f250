package edgesim

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/edgetel/edgetel/internal/testing/edgesim/fleet"
)

// LogsConfig makes every node run pods whose containers write numbered lines. With PodsPerNode
// 0 (the default) no node has such pods and /containerLogs answers like a failed pod lookup.
//
// Line n of a container is written at start + (n/Burst)·Burst/Rate: Burst lines share one
// timestamp, so a resume by sinceTime (whole seconds at the kubelet) repeats lines a reader must
// recognise. Every StderrEvery-th line goes to stderr.
type LogsConfig struct {
	Namespace        string        // default "edge-apps"
	PodsPerNode      int           // 0..20
	ContainersPerPod int           // 1..10, default 2
	Rate             float64       // lines per second per container, default 5
	Burst            int           // lines sharing one timestamp, default 1
	StderrEvery      int           // every n-th line is on stderr; 0: never
	PollInterval     time.Duration // how often a follow stream looks for new lines, default 100ms
}

// PodLabel is the label every log pod carries (value "edgesim").
const PodLabel = "app.kubernetes.io/name"

func (c *LogsConfig) setDefaults() error {
	if c.PodsPerNode < 0 || c.PodsPerNode > 20 {
		return fmt.Errorf("logs: pods per node must be 0..20, got %d", c.PodsPerNode)
	}
	if c.Namespace == "" {
		c.Namespace = "edge-apps"
	}
	if c.ContainersPerPod == 0 {
		c.ContainersPerPod = 2
	}
	if c.ContainersPerPod < 1 || c.ContainersPerPod > 10 {
		return fmt.Errorf("logs: containers per pod must be 1..10, got %d", c.ContainersPerPod)
	}
	if c.Rate == 0 {
		c.Rate = 5
	}
	if c.Rate < 0 || c.Rate > 10000 {
		return fmt.Errorf("logs: rate must be in (0, 10000] lines/s, got %v", c.Rate)
	}
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.Burst < 1 {
		return fmt.Errorf("logs: burst must be at least 1, got %d", c.Burst)
	}
	if c.StderrEvery < 0 {
		return fmt.Errorf("logs: stderr-every must not be negative, got %d", c.StderrEvery)
	}
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	return nil
}

// LogPodName is the name of node's k-th log pod.
func LogPodName(node string, k int) string { return fmt.Sprintf("%s-app-%d", node, k) }

// LogContainerName is the name of a log pod's c-th container.
func LogContainerName(c int) string { return fmt.Sprintf("c%d", c) }

// LogLine is the text of a container's line n (without the timestamp prefix or newline).
func LogLine(ns, pod, container string, n int64) string {
	return fmt.Sprintf("%s/%s/%s seq=%d", ns, pod, container, n)
}

// logPods lists node i's log pods as the fleet file carries them.
func (s *Sim) logPods(i int) []fleet.Pod {
	lc := s.cfg.Logs
	if lc.PodsPerNode == 0 {
		return nil
	}
	containers := make([]string, lc.ContainersPerPod)
	for c := range containers {
		containers[c] = LogContainerName(c)
	}
	pods := make([]fleet.Pod, lc.PodsPerNode)
	for k := range pods {
		pods[k] = fleet.Pod{Namespace: lc.Namespace, Name: LogPodName(s.nodeName(i), k),
			Labels: map[string]string{PodLabel: "edgesim"}, Containers: containers}
	}
	return pods
}

// logTarget is a container of a log pod.
type logTarget struct {
	node      int
	ns, pod   string
	container string
}

// parseLogPath resolves /containerLogs/{ns}/{pod}/{container} to a container of one of the
// fleet's log pods, the way cloudcore resolves it: by the pod, whose spec.nodeName picks the node.
func (s *Sim) parseLogPath(path string) (logTarget, bool) {
	seg := strings.Split(strings.Trim(path, "/"), "/")
	if len(seg) != 4 || seg[0] != "containerLogs" || !nonEmpty(seg) || s.cfg.Logs.PodsPerNode == 0 {
		return logTarget{}, false
	}
	t := logTarget{ns: seg[1], pod: seg[2], container: seg[3]}
	cut := strings.LastIndex(t.pod, "-app-")
	if t.ns != s.cfg.Logs.Namespace || cut < 0 {
		return logTarget{}, false
	}
	i, ok := s.byKey[t.pod[:cut]]
	k, err := strconv.Atoi(t.pod[cut+len("-app-"):])
	if !ok || err != nil || k < 0 || k >= s.cfg.Logs.PodsPerNode || LogPodName(s.nodeName(i), k) != t.pod {
		return logTarget{}, false
	}
	c, err := strconv.Atoi(strings.TrimPrefix(t.container, "c"))
	if err != nil || c < 0 || c >= s.cfg.Logs.ContainersPerPod || LogContainerName(c) != t.container {
		return logTarget{}, false
	}
	t.node = i
	return t, true
}

// lineTime is when line n of every container is written.
func (s *Sim) lineTime(n int64) time.Time {
	lc := s.cfg.Logs
	group := n / int64(lc.Burst)
	return s.start.Add(time.Duration(float64(group*int64(lc.Burst)) / lc.Rate * float64(time.Second)))
}

// linesBefore is how many lines are written at or before t.
func (s *Sim) linesBefore(t time.Time) int64 {
	lc := s.cfg.Logs
	if t.Before(s.start) {
		return 0
	}
	groups := int64(t.Sub(s.start).Seconds()*lc.Rate)/int64(lc.Burst) + 1
	n := groups * int64(lc.Burst)
	// Float rounding: move to the exact boundary.
	for n > 0 && s.lineTime(n-1).After(t) {
		n--
	}
	for !s.lineTime(n).After(t) {
		n++
	}
	return n
}

// firstLineAtOrAfter is the first line whose timestamp is not before t: the kubelet's sinceTime.
func (s *Sim) firstLineAtOrAfter(t time.Time) int64 {
	n := s.linesBefore(t)
	for n > 0 && !s.lineTime(n-1).Before(t) {
		n--
	}
	return n
}

// logOptions are the kubelet's containerLogs query parameters that edgesim honours.
type logOptions struct {
	follow, timestamps bool
	since              time.Time
	stream             string // All, Stdout or Stderr
}

func parseLogOptions(r *http.Request) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{stream: "All"}
	var err error
	if v := q.Get("follow"); v != "" {
		if o.follow, err = strconv.ParseBool(v); err != nil {
			return o, fmt.Errorf("follow: %w", err)
		}
	}
	if v := q.Get("timestamps"); v != "" {
		if o.timestamps, err = strconv.ParseBool(v); err != nil {
			return o, fmt.Errorf("timestamps: %w", err)
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		if o.since, err = time.Parse(time.RFC3339, v); err != nil {
			return o, fmt.Errorf("sinceTime: %w", err)
		}
	}
	if v := q.Get("stream"); v != "" {
		if v != "All" && v != "Stdout" && v != "Stderr" {
			return o, errors.New(`stream: must be "All", "Stdout" or "Stderr"`)
		}
		o.stream = v
	}
	return o, nil
}

// IsStderr says whether a container's line n goes to stderr.
func (s *Sim) IsStderr(n int64) bool {
	e := int64(s.cfg.Logs.StderrEvery)
	return e > 0 && n%e == e-1
}

// serveLogs is the edge kubelet's containerLogs for a resolved container. Through the tunnel the
// status is already 200; a bad query then arrives as text, as any edged error does.
func (s *Sim) serveLogs(w http.ResponseWriter, r *http.Request, t logTarget, tunnel bool) {
	o, err := parseLogOptions(r)
	if err != nil {
		if !tunnel {
			w.WriteHeader(http.StatusBadRequest)
		}
		fmt.Fprintf(w, "bad log options: %v\n", err)
		return
	}
	if !tunnel {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
	}
	n := int64(0)
	if !o.since.IsZero() {
		n = s.firstLineAtOrAfter(o.since)
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	rc := http.NewResponseController(w)
	for {
		end := s.linesBefore(time.Now())
		for ; n < end; n++ {
			if o.stream == "Stdout" && s.IsStderr(n) || o.stream == "Stderr" && !s.IsStderr(n) {
				continue
			}
			if o.timestamps {
				bw.WriteString(s.lineTime(n).UTC().Format(time.RFC3339Nano))
				bw.WriteByte(' ')
			}
			bw.WriteString(LogLine(t.ns, t.pod, t.container, n))
			bw.WriteByte('\n')
		}
		wrote := bw.Buffered() > 0
		if bw.Flush() != nil || !o.follow {
			return
		}
		if wrote || !tunnel {
			rc.Flush()
		}
		if !sleep(r.Context(), s.cfg.Logs.PollInterval) {
			return
		}
		if tunnel && (s.faults.disconnected[t.node].Load() || s.faults.closed[t.node].Load() || s.faults.kubeletDown[t.node].Load()) {
			// The tunnel went away: cloudcore ends the relayed stream.
			s.stats.truncated.Add(1)
			return
		}
	}
}

// relayLogs is cloudcore's getContainerLogs: the session comes from the pod's node; no session
// is a 500 with an empty body, and a closed tunnel a 200 with nothing after it.
func (s *Sim) relayLogs(w http.ResponseWriter, r *http.Request, t logTarget, cc int) {
	switch s.session(t.node, cc) {
	case sessionNone:
		s.noSession(w)
		return
	case sessionClosed:
		s.stats.staleSession.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	// As for metrics the status goes out with the first relayed line: a quiet container's stream
	// shows nothing, not even its headers, until it writes.
	w.WriteHeader(http.StatusOK)
	if s.faults.kubeletDown[t.node].Load() {
		s.hang(r)
		return
	}
	s.serveLogs(w, r, t, true)
}

// LogLineTime is the kubelet timestamp of every container's line n.
func (s *Sim) LogLineTime(n int64) time.Time { return s.lineTime(n) }

// LogLinesBefore is how many lines every container has written at t (lines 0..n-1).
func (s *Sim) LogLinesBefore(t time.Time) int64 { return s.linesBefore(t) }
