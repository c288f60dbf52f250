package kubeedgereceiver

import (
	"errors"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/edgetel/edgetel/internal/kube"
	"github.com/edgetel/edgetel/internal/sharedcomponent"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/edgefleet"
	"github.com/edgetel/edgetel/receivers/kubeedgereceiver/internal/logs"
)

// newLogsReceiver builds a logs signal with a fleet of its own (tests; the factory shares one
// fleet between the signals of a receiver ID).
func newLogsReceiver(set receiver.Settings, cfg *Config, next consumer.Logs, reg *kube.Registry) (*logs.Receiver, error) {
	f, _ := newFleet(set, cfg, reg)
	ref, err := ownFleet(f)
	if err != nil {
		return nil, err
	}
	return newLogsReceiverOn(set, cfg, next, reg, ref)
}

// newLogsReceiverOn builds the logs signal (internal/logs) on the receiver's fleet, after the
// checks that need the rest of the receiver's configuration.
func newLogsReceiverOn(set receiver.Settings, cfg *Config, next consumer.Logs, reg *kube.Registry,
	fleet *sharedcomponent.Ref[*edgefleet.Fleet]) (*logs.Receiver, error) {
	if cfg.Logs.KubernetesEvents && (!cfg.Logs.LifecycleEvents || cfg.Discovery.Mode != DiscoveryKubernetes) {
		return nil, errors.New("logs.kubernetes_events needs logs.lifecycle_events on and discovery.mode kubernetes")
	}
	if cfg.Discovery.Mode == DiscoveryStatic {
		return nil, errors.New("logs: discovery.mode static lists no pods; use file (a node file with pods) or kubernetes")
	}
	return logs.New(logs.Params{
		Settings: set,
		Config:   cfg.Logs,
		Next:     next,
		Labels:   cfg.labelMappings(),
		API:      cfg.Discovery.Kubernetes.APIConfig,
		Resync:   cfg.Discovery.Kubernetes.ResyncPeriod,
		Registry: reg,
		Fleet:    fleet,
		Classify: classify,
	})
}
