package charttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const valuesDoc = "charts/edgetel/VALUES.md"

// TestValuesReferenceInSync keeps charts/edgetel/VALUES.md what the schema and values.yaml say;
// EDGETEL_UPDATE_VALUES_DOC=1 rewrites it.
func TestValuesReferenceInSync(t *testing.T) {
	root := RepoRoot(t)
	schema, err := os.ReadFile(filepath.Join(ChartDir(t), "values.schema.json"))
	require.NoError(t, err)
	values, err := os.ReadFile(filepath.Join(ChartDir(t), "values.yaml"))
	require.NoError(t, err)
	want, err := ValuesReference(schema, values)
	require.NoError(t, err)
	for _, key := range []string{"`alerts.ruler.alertmanagers`", "`collector.priorityClassName`", "`query.livenessProbe`", "`collector.serviceMonitor.metricRelabelings`"} {
		assert.Contains(t, want, key)
	}
	path := filepath.Join(root, valuesDoc)
	if os.Getenv("EDGETEL_UPDATE_VALUES_DOC") == "1" {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err, "run EDGETEL_UPDATE_VALUES_DOC=1 go test ./internal/testing/charttest -run TestValuesReferenceInSync")
	assert.Equal(t, want, string(got), "%s is out of date: EDGETEL_UPDATE_VALUES_DOC=1 go test ./internal/testing/charttest -run TestValuesReferenceInSync", valuesDoc)
}

func TestValuesCommentsFollowKeys(t *testing.T) {
	c := valuesComments([]byte(strings.Join([]string{
		"a:",
		"  # -- first line",
		"  # second line",
		"  b: 1",
		"  list:",
		"    - name: x",
		"      # -- not a key of the tree",
		"      inner: 2",
		"  # plain comment",
		"  c: 3",
		"# -- top",
		"d: {}",
	}, "\n")))
	assert.Equal(t, map[string]string{"a.b": "first line second line", "d": "top"}, c)
}
