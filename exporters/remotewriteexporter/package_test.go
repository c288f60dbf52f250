package remotewriteexporter

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the exporter starts must stop on Shutdown.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
