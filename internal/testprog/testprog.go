// Package testprog finds the third-party programs the tests run (Prometheus, promtool, helm,
// Thanos): the Makefile builds each at a pinned version into ./bin and passes its path to the
// tests in an environment variable (TEST_ENV).
package testprog

import (
	"os"
	"testing"
)

// Path returns the program named by the environment variable env. Without it (a plain `go
// test`) the test is skipped, naming the make target that builds the program; set to a path
// that does not exist, the test fails.
func Path(t testing.TB, env, target string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Skipf("%s is not set: run `make test` (it builds the program with `make %s`), or set it to the program's path", env, target)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v (run `make %s`)", env, p, err, target)
	}
	return p
}
