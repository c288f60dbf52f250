// Package charttest renders the Helm chart with the real helm binary and checks what it renders:
// strict decoding with client-go's scheme, references between objects, and the RBAC it grants.
package charttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgetel/edgetel/internal/testing/repo"
	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// Helm returns the helm binary the Makefile installed (EDGETEL_HELM). Tests skip when it is not
// configured (plain `go test`), and fail when it is configured but missing.
func Helm(t testing.TB) string {
	t.Helper()
	return testprog.Path(t, "EDGETEL_HELM", "tool-helm")
}

// RepoRoot is the directory holding go.mod, found upwards from the test's working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// ChartDir is charts/edgetel in the repository.
func ChartDir(t testing.TB) string {
	return filepath.Join(RepoRoot(t), "charts", "edgetel")
}

// RunHelm runs helm with args and returns stdout, or stderr wrapped in the error.
func RunHelm(helm string, args ...string) ([]byte, error) {
	cmd := exec.Command(helm, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// helm keeps caches and config under HOME; keep them out of the user's.
	tmp := os.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(tmp, "edgetel-helm-cache"),
		"HELM_CONFIG_HOME="+filepath.Join(tmp, "edgetel-helm-config"), "HELM_DATA_HOME="+filepath.Join(tmp, "edgetel-helm-data"))
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// KubeVersion is the Kubernetes version the chart is rendered for (client-go v0.37).
const KubeVersion = "1.37.0"

// Render runs `helm template` on the chart with extra arguments (-f values files, --set ...).
func Render(t testing.TB, extra ...string) ([]byte, error) {
	t.Helper()
	args := append([]string{"template", "edgetel", ChartDir(t), "--namespace", "edgetel", "--include-crds", "--kube-version", KubeVersion}, extra...)
	return RunHelm(Helm(t), args...)
}

// ExampleValues lists every chart values file under examples/ (values*.yaml), relative to the repo.
func ExampleValues(t testing.TB) []string {
	t.Helper()
	root := RepoRoot(t)
	var files []string
	err := filepath.WalkDir(filepath.Join(root, "examples"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), "values") && strings.HasSuffix(d.Name(), ".yaml") {
			rel, _ := filepath.Rel(root, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// CIValues lists the chart's ci/*-values.yaml files (the chart-testing convention), relative to
// the repo.
func CIValues(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(ChartDir(t), "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no ci/*-values.yaml in the chart")
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(RepoRoot(t), f)
	}
	return files
}
