// Package e2e runs edgetel's Kubernetes-facing components against a real control plane
// (internal/testing/testcluster), each with the ServiceAccount and RBAC the Helm chart gives it: a call
// the chart's roles do not allow fails the test, because a real authorizer refuses it. The tests
// are in _test files; this package has no other code.
package e2e
