package objstoreexporter

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that every goroutine the exporter (and the tsdb it runs) starts is stopped by
// Shutdown. The crash test's child process exits through SIGKILL and never gets here.
func TestMain(m *testing.M) {
	if os.Getenv(crashModeEnv) != "" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}
