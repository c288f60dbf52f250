//go:build tools

// Package tools pins the VictoriaLogs the logs tests deliver to (OTLP in, LogsQL out); the
// Makefile's tool-victorialogs target builds it from this module.
package tools

import _ "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
