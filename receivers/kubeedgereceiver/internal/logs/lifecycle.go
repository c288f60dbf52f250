package logs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/discovery"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/metadata"
)

// Lifecycle event names: stable, for queries and alerts to key on.
const (
	eventNodeJoin     = "kubeedge.node.join"
	eventNodeLeave    = "kubeedge.node.leave"
	eventNodeReady    = "kubeedge.node.ready"
	eventNodeNotReady = "kubeedge.node.not_ready"
	eventTunnelDown   = "kubeedge.node.tunnel_disconnected"
	eventTunnelUp     = "kubeedge.node.tunnel_reconnected"
	eventTaints       = "kubeedge.node.taints_changed"
	eventKubernetes   = "kubeedge.kubernetes_event"
)

// maxLifecycleEvents bounds the events held while the pipeline refuses them; beyond it the
// oldest are dropped (reason lifecycle_overflow).
const maxLifecycleEvents = 10000

const reasonLifecycleOverflow = "lifecycle_overflow"

var severityText = map[plog.SeverityNumber]string{plog.SeverityNumberInfo: "INFO", plog.SeverityNumberWarn: "WARN"}

type lifecycleEvent struct {
	name     string
	severity plog.SeverityNumber
	node     discovery.Target
	body     string
	at       time.Time
	attrs    map[string]any // the record's attributes beyond event.name
}

// lifecycle turns discovery snapshots and scrape health into node lifecycle events.
type lifecycle struct {
	mu       sync.Mutex
	baseline bool                      // a first snapshot was seen
	ready    map[string]kube.Readiness // nodes of the last snapshot
	targets  map[string]discovery.Target
	taints   map[string][]string // their taints, as key[=value]:effect
	tunnel   map[string]bool     // whether any endpoint answered in the node's last round
	events   []lifecycleEvent
	overflow int
}

func newLifecycle() *lifecycle {
	return &lifecycle{ready: map[string]kube.Readiness{}, targets: map[string]discovery.Target{},
		taints: map[string][]string{}, tunnel: map[string]bool{}}
}

func (l *lifecycle) add(e lifecycleEvent) {
	if len(l.events) >= maxLifecycleEvents {
		l.events = l.events[1:]
		l.overflow++
	}
	l.events = append(l.events, e)
}

// snapshot compares the shard's nodes with the last snapshot. The first one after start is the
// baseline: nodes already there are not announced.
func (l *lifecycle) snapshot(nodes []discovery.Target, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		seen[n.Name] = true
		prev, known := l.ready[n.Name]
		l.ready[n.Name] = n.Ready
		l.targets[n.Name] = n
		taints := taintStrings(n.Taints)
		if prevTaints := l.taints[n.Name]; known && !slices.Equal(prevTaints, taints) {
			l.add(taintEvent(n, prevTaints, taints, now))
		}
		l.taints[n.Name] = taints
		switch {
		case !known && l.baseline:
			l.add(lifecycleEvent{name: eventNodeJoin, severity: plog.SeverityNumberInfo, node: n, body: "node " + n.Name + " joined", at: now})
		case known && prev != n.Ready && n.Ready == kube.ReadyTrue:
			l.add(lifecycleEvent{name: eventNodeReady, severity: plog.SeverityNumberInfo, node: n, body: "node " + n.Name + " is Ready (was " + string(prev) + ")", at: now})
		case known && prev != n.Ready:
			l.add(lifecycleEvent{name: eventNodeNotReady, severity: plog.SeverityNumberWarn, node: n, body: "node " + n.Name + " is not Ready: " + string(n.Ready), at: now})
		}
	}
	for name := range l.ready {
		if !seen[name] {
			delete(l.ready, name)
			delete(l.targets, name)
			delete(l.taints, name)
			delete(l.tunnel, name)
			l.add(lifecycleEvent{name: eventNodeLeave, severity: plog.SeverityNumberWarn, node: discovery.Target{Node: kube.Node{Name: name}}, body: "node " + name + " left", at: now})
		}
	}
	l.baseline = true
}

func taintStrings(taints []corev1.Taint) []string {
	out := make([]string, len(taints))
	for i, t := range taints {
		out[i] = t.ToString()
	}
	slices.Sort(out)
	return out
}

// taintEvent says which taints came and went; a NoSchedule or NoExecute taint coming (the node
// cordoned, or its pods about to be evicted) is a warning.
func taintEvent(n discovery.Target, before, after []string, now time.Time) lifecycleEvent {
	var added, removed []string
	sev := plog.SeverityNumberInfo
	for _, t := range after {
		if !slices.Contains(before, t) {
			added = append(added, t)
			if strings.HasSuffix(t, ":"+string(corev1.TaintEffectNoExecute)) || strings.HasSuffix(t, ":"+string(corev1.TaintEffectNoSchedule)) {
				sev = plog.SeverityNumberWarn
			}
		}
	}
	for _, t := range before {
		if !slices.Contains(after, t) {
			removed = append(removed, t)
		}
	}
	body := fmt.Sprintf("node %s taints changed: added %v, removed %v", n.Name, added, removed)
	return lifecycleEvent{name: eventTaints, severity: sev, node: n, body: body, at: now}
}

// health takes a node's scrape round: a change of whether any endpoint answered is a tunnel
// drop or reconnect (the first round only sets the state).
func (l *lifecycle) health(n discovery.Target, up bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, member := l.ready[n.Name]; !member {
		return
	}
	prev, known := l.tunnel[n.Name]
	l.tunnel[n.Name] = up
	switch {
	case !known || prev == up:
	case up:
		l.add(lifecycleEvent{name: eventTunnelUp, severity: plog.SeverityNumberInfo, node: n, body: "node " + n.Name + " answers again", at: time.Now()})
	default:
		l.add(lifecycleEvent{name: eventTunnelDown, severity: plog.SeverityNumberWarn, node: n, body: "node " + n.Name + " stopped answering: tunnel down or node unreachable", at: time.Now()})
	}
}

// kubeEvent takes a Kubernetes Event about one of the shard's nodes: the Node itself, or an
// object its kubelet reported on (source.host). Others are another shard's or not about an edge
// node. The attributes follow contrib's k8sevents receiver.
func (l *lifecycle) kubeEvent(e kube.Event) {
	node := e.Host
	if e.Kind == "Node" {
		node = e.ObjectName
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n, member := l.targets[node]
	if !member {
		return
	}
	sev := plog.SeverityNumberInfo
	if e.Type == corev1.EventTypeWarning {
		sev = plog.SeverityNumberWarn
	}
	l.add(lifecycleEvent{name: eventKubernetes, severity: sev, node: n, body: e.Message, at: e.Time, attrs: map[string]any{
		"k8s.event.reason": e.Reason, "k8s.event.name": e.Name, "k8s.event.uid": e.UID, "k8s.event.count": int64(e.Count),
		"k8s.namespace.name": e.ObjectNamespace, "k8s.object.kind": e.Kind, "k8s.object.name": e.ObjectName,
		"k8s.object.uid": e.ObjectUID, "k8s.object.fieldpath": e.FieldPath,
	}})
}

// take returns the pending events and how many were dropped for room since the last take.
func (l *lifecycle) take() ([]lifecycleEvent, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev, over := l.events, l.overflow
	l.overflow = 0
	return ev[:len(ev):len(ev)], over
}

// done removes the first n events, which the pipeline accepted.
func (l *lifecycle) done(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, len(l.events)) // events dropped for room meanwhile
	l.events = append([]lifecycleEvent(nil), l.events[n:]...)
}

// flushLifecycle hands pending lifecycle events to the pipeline; refused ones stay pending.
func (r *Receiver) flushLifecycle(ctx context.Context) {
	if r.life == nil {
		return
	}
	events, over := r.life.take()
	if over > 0 {
		r.tel.dropped(reasonLifecycleOverflow, over)
	}
	if len(events) == 0 {
		return
	}
	ld := plog.NewLogs()
	now := pcommon.NewTimestampFromTime(time.Now())
	for _, e := range events {
		rl := ld.ResourceLogs().AppendEmpty()
		attrs := rl.Resource().Attributes()
		attrs.PutStr("k8s.node.name", e.node.Name)
		for _, m := range r.p.Labels {
			if v := e.node.Labels[m.Key]; v != "" {
				attrs.PutStr(m.Attribute, v)
			}
		}
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName(metadata.ScopeName)
		rec := sl.LogRecords().AppendEmpty()
		rec.SetTimestamp(pcommon.NewTimestampFromTime(e.at))
		rec.SetObservedTimestamp(now)
		rec.SetSeverityNumber(e.severity)
		rec.SetSeverityText(severityText[e.severity])
		rec.SetEventName(e.name)
		// Stores that drop the record's event name still keep the attribute.
		rec.Attributes().PutStr("event.name", e.name)
		putAttributes(rec.Attributes(), e.attrs)
		rec.Body().SetStr(e.body)
	}
	if err := r.next.ConsumeLogs(ctx, ld); err != nil {
		r.tel.consumeErrors.Add(context.Background(), 1)
		return
	}
	r.tel.events.Add(context.Background(), int64(len(events)))
	r.life.done(len(events))
}

// putAttributes adds the non-empty attributes.
func putAttributes(m pcommon.Map, attrs map[string]any) {
	for k, v := range attrs {
		switch v := v.(type) {
		case string:
			if v != "" {
				m.PutStr(k, v)
			}
		case int64:
			m.PutInt(k, v)
		}
	}
}
