package remotewriteexporter

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the exporter starts must stop on Shutdown. The child collector of the
// SIGKILL test is exempt: it exits while Prometheus still holds keep-alive connections that
// confighttp's client cannot close (its otelhttp and header wrappers do not pass
// CloseIdleConnections on), which goleak would report.
func TestMain(m *testing.M) {
	if os.Getenv("EDGETEL_RW_CHILD") == "1" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}
