// Package testprog finds the third-party programs the tests run (Prometheus, promtool, helm,
// Thanos): the Makefile builds each at a pinned version into ./bin and passes its path to the
// tests in an environment variable (TEST_ENV).
package testprog

import (
	"os"
	"os/exec"
	"path/filepath"
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

// Commands returns a directory holding this repository's named commands (cmd/<name>):
// $EDGETEL_BIN, where `make test` builds them (each must be there), else a temporary directory
// they are built into from this tree.
func Commands(t testing.TB, names ...string) string {
	t.Helper()
	if dir := os.Getenv("EDGETEL_BIN"); dir != "" {
		for _, c := range names {
			if _, err := os.Stat(filepath.Join(dir, c)); err != nil {
				t.Fatalf("EDGETEL_BIN=%s: %v", dir, err)
			}
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, c := range names {
		args = append(args, "github.com/edgetel/edgetel/cmd/"+c)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}
