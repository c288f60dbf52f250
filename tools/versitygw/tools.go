//go:build tools

// Package tools pins the S3 server of the object-storage tests: the Versity S3 Gateway
// (Apache-2.0) with its posix backend, which serves a directory over the S3 API. The Makefile's
// tool-versitygw target builds it from this module.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
