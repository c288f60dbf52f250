// Package apis holds the IPTablesRules custom resource that the rules controller writes and the
// rules agents read. The types are plain structs converted to and from unstructured objects, so
// the dynamic client carries them and no generated clientset or deepcopy code is needed.
package apis

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and version of the CRD (charts/edgetel/files/onboard.edgetel.io_iptablesrules.yaml).
const (
	Group    = "onboard.edgetel.io"
	Version  = "v1alpha1"
	Kind     = "IPTablesRules"
	Resource = "iptablesrules"
)

// GVR is what the dynamic client addresses.
var GVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: Resource}

// GVK is the object's kind.
var GVK = schema.GroupVersionKind{Group: Group, Version: Version, Kind: Kind}

// Rule models one DNAT rule. The field names follow edge-watcher's IPTablesRules so its users
// recognise them: source_* is what the rule matches (the original destination), destination_*
// is where DNAT sends the packet. source_ip is required by the DNAT policy (internal/cmd/onboard/policy):
// a rule without it would redirect every destination on that port.
type Rule struct {
	Table           string `json:"table"`
	Chain           string `json:"chain"`
	Jump            string `json:"jump"`
	Protocol        string `json:"protocol"`
	SourceIP        string `json:"source_ip,omitempty"`
	SourcePort      string `json:"source_port"`
	DestinationIP   string `json:"destination_ip"`
	DestinationPort string `json:"destination_port"`
	// Node names the edge node the rule serves (edge-ip model); for humans only.
	Node string `json:"node,omitempty"`
}

// Model names which rule shape the controller computes.
type Model string

// The two rule models users run.
const (
	// ModelEdgeIP is edge-watcher's: one rule per edge node IP, -d <edgeIP> --dport <port>.
	ModelEdgeIP Model = "edge-ip"
	// ModelTunnelPort is KubeEdge's (>= 1.8): the edge node's kubelet port is a cloudcore's tunnel
	// port, and the rule sends it to that cloudcore. Unlike KubeEdge's own rules it keeps the
	// -d <edgeIP> match: a port-only rule would redirect any address.
	ModelTunnelPort Model = "tunnel-port"
)

// Spec is the desired state.
type Spec struct {
	Model Model  `json:"model"`
	Rules []Rule `json:"rules"`
}

// Status is what the controller observed when it last wrote the spec.
type Status struct {
	ObservedGeneration int64              `json:"observedGeneration,omitempty"`
	RuleCount          int                `json:"ruleCount"`
	Conditions         []metav1.Condition `json:"conditions,omitempty"`
	// Agents is each rules agent's report, by node name. Agents write their own entry with a
	// merge patch, so they never overwrite each other or the controller's fields.
	Agents map[string]AgentStatus `json:"agents,omitempty"`
}

// AgentStatus is what one agent did with the spec.
type AgentStatus struct {
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Rules is how many rules the agent's chain holds.
	Rules int `json:"rules"`
	// Refused lists the rules the agent would not write and why (outside the DNAT policy).
	Refused []string `json:"refused,omitempty"`
	// Error is the last failure to apply the rules; empty when the chain is as desired.
	Error string `json:"error,omitempty"`
}

// IPTablesRules is the custom resource.
type IPTablesRules struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec   `json:"spec"`
	Status            Status `json:"status,omitempty"`
}

// Condition types on IPTablesRules.
const (
	// ConditionReady is true when the spec holds the rules computed from the current cluster state.
	ConditionReady = "Ready"
	// ConditionDegraded is true when some edge node or tunnel record could not be turned into a rule.
	ConditionDegraded = "Degraded"
)

// FromUnstructured converts a dynamic-client object.
func FromUnstructured(u *unstructured.Unstructured) (*IPTablesRules, error) {
	var r IPTablesRules
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ToUnstructured converts r for the dynamic client, setting apiVersion and kind.
func ToUnstructured(r *IPTablesRules) (*unstructured.Unstructured, error) {
	r.APIVersion = GVK.GroupVersion().String()
	r.Kind = Kind
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(r)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: obj}, nil
}
