// Package onboard holds what the edgetel-onboard roles share: the RBAC they need and leader
// election. The join service, rules controller and rules agent live in sub-packages.
package onboard

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/edgetel/edgetel/internal/cmd/onboard/apis"
)

// The controller's and the agent's permissions, one list per scope. The chart grants exactly
// these: a ClusterRole for the cluster-scoped lists, a Role in the release's namespace and a Role
// in KubeEdge's namespace for the others. internal/cmd/onboard's tests run the code against fake
// clients and check each call it makes against the list of the namespace it made it in, and
// internal/testing/charttest checks the rendered roles equal the lists.

// RBAC is what the controller needs across the cluster: nothing that writes.
var RBAC = []rbacv1.PolicyRule{
	// Rules controller: node informer (edge nodes' addresses, and cloud nodes' to refuse).
	// Join: name and IP checks.
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch"}},
	// Join callers' bearer tokens.
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
}

// NamespaceRBAC is what the controller needs in its own namespace: the join reservations
// ConfigMap and the leader Lease, each by name (the chart creates both, so the controller
// creates neither and cannot touch the collector's or the edge agent's ConfigMaps), its
// IPTablesRules object and events on the object.
func NamespaceRBAC(reservations, lease string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{reservations}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{apis.Group}, Resources: []string{apis.Resource}, Verbs: []string{"get", "list", "watch", "create", "update"}},
		{APIGroups: []string{apis.Group}, Resources: []string{apis.Resource + "/status"}, Verbs: []string{"update"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{lease}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
	}
}

// TokenSecret is cloudcore's join token secret in KubeEdge's namespace (join.TokenSecret).
const TokenSecret = "tokensecret"

// KubeEdgeRBAC is what the controller reads in KubeEdge's namespace: one secret, by name,
// rather than every secret of the cluster; cloudcore's, edge-watcher's and the tunnelport
// ConfigMaps; cloudcore's EndpointSlices.
var KubeEdgeRBAC = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{TokenSecret}, Verbs: []string{"get"}},
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
}

// AgentRBAC is what the agent reads across the cluster: nodes, whose cloud-side addresses its
// DNAT policy refuses.
var AgentRBAC = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch"}},
}

// AgentNamespaceRBAC is what the agent needs in the release's namespace: the IPTablesRules
// object, its own entry of the object's status, events.
var AgentNamespaceRBAC = []rbacv1.PolicyRule{
	{APIGroups: []string{apis.Group}, Resources: []string{apis.Resource}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{apis.Group}, Resources: []string{apis.Resource + "/status"}, Verbs: []string{"patch"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
}

// AgentKubeEdgeRBAC is what the agent reads in KubeEdge's namespace: cloudcore's endpoints,
// the only DNAT targets it accepts.
var AgentKubeEdgeRBAC = []rbacv1.PolicyRule{
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
}

// Allows reports whether rules grant verb on group/resource (resource may carry "/subresource")
// for the object called name ("" for list, watch and create, which rules restricted to names
// never grant).
func Allows(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	for _, r := range rules {
		if has(r.APIGroups, group) && has(r.Resources, resource) && has(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || name != "" && has(r.ResourceNames, name)) {
			return true
		}
	}
	return false
}

func has(list []string, v string) bool {
	for _, x := range list {
		if x == v || x == "*" {
			return true
		}
	}
	return false
}
