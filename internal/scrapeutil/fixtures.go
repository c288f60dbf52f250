// Package scrapeutil holds helpers shared by the kubeedge receiver's packages and tests.
package scrapeutil

import (
	"errors"
	"os"
	"path/filepath"
)

// FixturesDir is the shared fixtures directory: $EDGETEL_FIXTURES, else ../shared/fixtures
// relative to the repository root found above the working directory.
func FixturesDir() (string, error) {
	if dir := os.Getenv("EDGETEL_FIXTURES"); dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "fixtures"), nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("no go.mod above " + wd)
		}
	}
}

// KubeletFixture reads a file of fixtures/kubelet.
func KubeletFixture(name string) ([]byte, error) {
	dir, err := FixturesDir()
	if err != nil {
		return nil, err
	}
	return os.ReadFile(filepath.Join(dir, "kubelet", name))
}
