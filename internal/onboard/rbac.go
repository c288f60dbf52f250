// Package onboard holds what the edgetel-onboard roles share: the RBAC they need and leader
// election. The join service, rules controller and rules agent live in sub-packages.
package onboard

import (
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/edgetel/edgetel/internal/onboard/apis"
)

// RBAC is every verb the controller role (join service, rules controller, leader election,
// events) uses across namespaces; KubeEdgeRBAC adds what it reads in KubeEdge's namespace only.
// The chart's ClusterRole and Role grant exactly these; a test runs the code against fake
// clients and checks each call it makes is listed here.
var RBAC = []rbacv1.PolicyRule{
	// Rules controller: edge node informer. Join: name and IP checks.
	{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch"}},
	// Rules controller: cloudcore replicas.
	{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
	// kubeedge/tunnelport (informer), kubeedge/cloudcore and kubeedge/edge-watcher-config (join,
	// get), and the join reservations ConfigMap (get, create, update).
	{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
	// Join callers' bearer tokens.
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
	{APIGroups: []string{apis.Group}, Resources: []string{apis.Resource}, Verbs: []string{"get", "list", "watch", "create", "update"}},
	{APIGroups: []string{apis.Group}, Resources: []string{apis.Resource + "/status"}, Verbs: []string{"update"}},
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
}

// TokenSecret is cloudcore's join token secret in KubeEdge's namespace (join.TokenSecret).
const TokenSecret = "tokensecret"

// KubeEdgeRBAC is what the controller reads in KubeEdge's namespace, granted by a Role there:
// one secret, by name, rather than every secret of the cluster.
var KubeEdgeRBAC = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{TokenSecret}, Verbs: []string{"get"}},
}

// AgentRBAC is every verb the agent role uses.
var AgentRBAC = []rbacv1.PolicyRule{
	{APIGroups: []string{apis.Group}, Resources: []string{apis.Resource}, Verbs: []string{"get", "list", "watch"}},
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
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
