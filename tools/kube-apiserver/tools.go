//go:build tools

// Package tools pins the kube-apiserver the control-plane tests run (internal/testing/testcluster); the
// Makefile's tool-kube-apiserver target builds it from this module.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
