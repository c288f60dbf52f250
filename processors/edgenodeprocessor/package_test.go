package edgenodeprocessor

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the processor starts (informer, sweeper) must be gone after Shutdown.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
