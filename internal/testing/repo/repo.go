// Package repo finds the repository's root, for tests and tools that run files of the repository
// (the chart, scripts) from wherever `go test` put them. Its tests are the repository-wide checks
// that need Go (what the collector links); the Makefile's lint target has the others.
package repo

import (
	"errors"
	"os"
	"path/filepath"
)

// Root is the directory holding go.mod, found upwards from the working directory.
func Root() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", errors.New("no go.mod above " + wd)
		}
	}
}
