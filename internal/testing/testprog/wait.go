package testprog

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// WaitOK waits until GET u answers 200 (a started program's readiness endpoint), for at most two
// minutes, and fails the test naming what never answered.
func WaitOK(t testing.TB, what, u string) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get(u)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 2*time.Minute, 100*time.Millisecond, "%s never answered %s", what, u)
}
