package repo

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/edgetel/edgetel/"

// shipped are the patterns of what the collector distribution is built from.
var shipped = []string{"./receivers/...", "./processors/...", "./exporters/...", "./cmd/edgetelcol"}

// notShipped are the import path prefixes the collector must not link: test support and the
// simulator (internal/testing), and the side programs' code (internal/cmd).
var notShipped = []string{module + "internal/testing/", module + "internal/cmd/"}

// TestComponentsLinkNoTestSupport fails when a component package, or the collector command,
// depends (outside its _test.go files) on test support or on a side program's code.
func TestComponentsLinkNoTestSupport(t *testing.T) {
	root, err := Root()
	require.NoError(t, err)
	deps := goList(t, root, append([]string{"-deps"}, shipped...)...)
	require.Contains(t, deps, module+"internal/kube", "go list -deps did not list the components' dependencies")
	assert.Empty(t, forbidden(deps), "components depend on code that must not ship in the collector")

	// The prefixes still name packages, so a move cannot turn this test into a no-op.
	for _, prefix := range notShipped {
		pkgs := goList(t, root, "./"+strings.TrimPrefix(prefix, module)+"...")
		assert.NotEmpty(t, pkgs, "no package under %s", prefix)
	}
}

func TestForbiddenFindsTestSupport(t *testing.T) {
	deps := []string{
		module + "internal/kube",
		module + "internal/testing/edgesim",
		module + "internal/cmd/query",
		module + "receivers/kubeedgereceiver/internal/testingx",
		"testing",
	}
	assert.Equal(t, []string{module + "internal/testing/edgesim", module + "internal/cmd/query"}, forbidden(deps))
}

func forbidden(deps []string) []string {
	var bad []string
	for _, d := range deps {
		for _, prefix := range notShipped {
			if strings.HasPrefix(d, prefix) {
				bad = append(bad, d)
			}
		}
	}
	return bad
}

func goList(t *testing.T, dir string, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}}"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	if err != nil && errors.As(err, &exitErr) {
		t.Fatalf("go list %v: %v\n%s", args, err, exitErr.Stderr)
	}
	require.NoError(t, err)
	return strings.Fields(string(out))
}
