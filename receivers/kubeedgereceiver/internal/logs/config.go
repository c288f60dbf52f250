package logs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/edgetel/edgetel/internal/kube"
)

// Default log limits: 64 KiB keeps ordinary lines whole and bounds what one line can hold in
// memory; 1,000 streams is a few hundred pods with their containers.
const (
	DefaultMaxStreams  = 1000
	DefaultMaxLineSize = 64 << 10
	// DefaultIdleTimeout ends a log stream that brought nothing, not even its headers, for
	// this long: through cloudcore a stream whose edge cannot reach its kubelet never answers.
	DefaultIdleTimeout = 2 * time.Minute
)

// DefaultConfig is the logs section's default: nothing followed, bounds set.
func DefaultConfig() Config {
	return Config{
		MaxStreams:         DefaultMaxStreams,
		NodeBytesPerSecond: 1 << 20,
		MaxLineSize:        DefaultMaxLineSize,
		FlushInterval:      time.Second,
		MaxPendingLines:    4096,
		// 4,096 lines of max_line_size would be 256 MiB per stream: 1 MiB per stream and
		// 64 MiB for all bound the metrics process's memory during a log-store outage.
		MaxPendingBytes:      1 << 20,
		MaxPendingBytesTotal: 64 << 20,
		RetryInterval:        time.Second,
		MaxRetryInterval:     30 * time.Second,
		IdleTimeout:          DefaultIdleTimeout,
	}
}

// Config selects the pods whose container logs the logs signal follows and bounds it (the
// receiver's logs section).
// Nothing is followed unless namespaces lists at least one namespace.
type Config struct {
	// Namespaces whose pods are followed; "*" is every namespace, and must be said.
	Namespaces []string `mapstructure:"namespaces"`
	// LabelSelector further selects pods by their labels (Kubernetes selector syntax).
	LabelSelector string `mapstructure:"label_selector"`
	// Storage is the storage extension that keeps each container's position across restarts;
	// without one a restarted collector starts every container from the start of its log.
	Storage *component.ID `mapstructure:"storage"`
	// LifecycleEvents emits node lifecycle records: joins, departures, Ready changes (from
	// discovery) and tunnel drops and reconnects (from the metrics signal's scrape health).
	LifecycleEvents bool `mapstructure:"lifecycle_events"`
	// KubernetesEvents adds, with lifecycle_events, the Kubernetes Events about the shard's
	// edge nodes and the pods their kubelets report on (evictions, image pulls, probes...).
	// Needs discovery.mode kubernetes and the right to list and watch events cluster-wide.
	KubernetesEvents bool `mapstructure:"kubernetes_events"`
	// SplitStreams follows stdout and stderr as two streams (the kubelet's stream parameter,
	// feature gate PodLogsQuerySplitStreams), so each record has its log.iostream.
	SplitStreams bool `mapstructure:"split_streams"`
	// MaxStreams bounds the log streams open at once; containers beyond it wait their turn.
	MaxStreams int `mapstructure:"max_streams"`
	// NodeBytesPerSecond bounds the log bytes read per second from one node, all its streams together.
	NodeBytesPerSecond int `mapstructure:"node_bytes_per_second"`
	// MaxLineSize is the longest line kept whole, in bytes; longer lines are cut to it.
	MaxLineSize int `mapstructure:"max_line_size"`
	// FlushInterval is how often read lines are handed to the pipeline.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// MaxPendingLines bounds the lines one stream holds before the pipeline accepted them; a
	// stream at the bound stops reading until they are accepted.
	MaxPendingLines int `mapstructure:"max_pending_lines"`
	// MaxPendingBytes bounds the bytes one stream holds so (lines of up to max_line_size make a
	// line count no memory bound); MaxPendingBytesTotal bounds all streams together. A stream
	// at either bound stops reading, as at max_pending_lines: nothing read is dropped.
	MaxPendingBytes      int64 `mapstructure:"max_pending_bytes"`
	MaxPendingBytesTotal int64 `mapstructure:"max_pending_bytes_total"`
	// RetryInterval is the first wait before a stream that ended is reopened; it doubles up to
	// MaxRetryInterval while the stream keeps failing.
	RetryInterval    time.Duration `mapstructure:"retry_interval"`
	MaxRetryInterval time.Duration `mapstructure:"max_retry_interval"`
	// IdleTimeout closes a stream that brought no byte, headers included, for this long, and
	// reopens it from its position. Through cloudcore nothing else ends a stream whose edge
	// cannot reach its kubelet (the status is only sent with the first relayed line), so a quiet
	// container's stream is reopened once per IdleTimeout too.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
}

// Validate checks the logs section; errors name its keys.
func (l Config) Validate() error {
	var errs []error
	for i, ns := range l.Namespaces {
		if ns == "*" {
			continue
		}
		if e := validation.IsDNS1123Label(ns); len(e) > 0 {
			errs = append(errs, fmt.Errorf("logs.namespaces[%d]: %s, got %q", i, strings.Join(e, "; "), ns))
		}
	}
	if _, err := labels.Parse(l.LabelSelector); err != nil {
		errs = append(errs, fmt.Errorf("logs.label_selector: %w", err))
	}
	if l.MaxStreams <= 0 {
		errs = append(errs, fmt.Errorf("logs.max_streams: must be positive, got %d", l.MaxStreams))
	}
	if l.NodeBytesPerSecond <= 0 {
		errs = append(errs, fmt.Errorf("logs.node_bytes_per_second: must be positive, got %v", l.NodeBytesPerSecond))
	}
	if l.MaxLineSize < 64 {
		errs = append(errs, fmt.Errorf("logs.max_line_size: must be at least 64 bytes, got %d", l.MaxLineSize))
	}
	if l.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("logs.flush_interval: must be positive, got %v", l.FlushInterval))
	}
	if l.MaxPendingLines <= 0 {
		errs = append(errs, fmt.Errorf("logs.max_pending_lines: must be positive, got %d", l.MaxPendingLines))
	}
	if l.MaxPendingBytes < int64(l.MaxLineSize) || l.MaxPendingBytesTotal < l.MaxPendingBytes {
		errs = append(errs, fmt.Errorf("logs.max_pending_bytes, logs.max_pending_bytes_total: must be at least logs.max_line_size and logs.max_pending_bytes, got %d, %d", l.MaxPendingBytes, l.MaxPendingBytesTotal))
	}
	if l.RetryInterval <= 0 || l.MaxRetryInterval < l.RetryInterval {
		errs = append(errs, fmt.Errorf("logs.retry_interval: must be positive and not above logs.max_retry_interval (%v), got %v", l.MaxRetryInterval, l.RetryInterval))
	}
	if l.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("logs.idle_timeout: must be positive, got %v", l.IdleTimeout))
	}
	return errors.Join(errs...)
}

// selects says whether the logs signal follows pod p.
func (l Config) selects(sel labels.Selector, p kube.Pod) bool {
	return (slices.Contains(l.Namespaces, "*") || slices.Contains(l.Namespaces, p.Namespace)) &&
		sel.Matches(labels.Set(p.Labels))
}

// podWatch is the Pod watch for discovery.mode kubernetes: the pods of label_selector, in the
// one namespace when a single one is followed (a namespaced Role then suffices), else in all.
// Without namespaces (lifecycle records only) no pods are watched.
func (l Config) podWatch(resync time.Duration) *kube.PodWatch {
	if len(l.Namespaces) == 0 {
		return nil
	}
	w := &kube.PodWatch{Selector: l.LabelSelector, Resync: resync}
	if len(l.Namespaces) == 1 && l.Namespaces[0] != "*" {
		w.Namespace = l.Namespaces[0]
	}
	return w
}
