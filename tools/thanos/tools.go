//go:build tools

// Package tools pins the Thanos the tests run against the objstore exporter's buckets (bucket
// verify, store, query, compact); the Makefile's tool-thanos target builds it from this module.
package tools

import _ "github.com/thanos-io/thanos/cmd/thanos"
