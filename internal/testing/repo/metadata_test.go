package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryMetadataYAMLIsChecked fails when a component has a metadata.yaml that no test of its
// package compares with the code (internal/testing/telemetrytest).
func TestEveryMetadataYAMLIsChecked(t *testing.T) {
	root, err := Root()
	require.NoError(t, err)
	files, err := filepath.Glob(filepath.Join(root, "*", "*", "metadata.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		tests, err := filepath.Glob(filepath.Join(filepath.Dir(f), "*_test.go"))
		require.NoError(t, err)
		var status, metrics bool
		for _, tf := range tests {
			src, err := os.ReadFile(tf)
			require.NoError(t, err)
			status = status || strings.Contains(string(src), "telemetrytest.CheckStatus(")
			metrics = metrics || strings.Contains(string(src), "telemetrytest.CheckMetrics(")
		}
		rel, _ := filepath.Rel(root, f)
		assert.True(t, status && metrics, "%s: no test calls telemetrytest.CheckStatus and CheckMetrics", rel)
	}
}
