// Package promversion names the Prometheus release edgetel links as a library.
package promversion

// Version is the Prometheus release whose packages edgetel links (module
// github.com/prometheus/prometheus v0.315.1 is Prometheus 3.15.1). edgetel-query and the objstore
// exporter's head API report it as their build version: Grafana picks its query features from it
// and Thanos' sidecar asks for Prometheus ≥ 2.24 before it sends label matchers.
// internal/cmd/query's tests keep it in step with go.mod.
const Version = "3.15.1"
