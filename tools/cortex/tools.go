//go:build tools

// Package tools pins the Cortex the tests run the remote-write exporter against (a second real
// store beside Thanos Receive: tenants by X-Scope-OrgID, out-of-order window); the Makefile's
// tool-cortex target builds it from this module.
package tools

import _ "github.com/cortexproject/cortex/cmd/cortex"
