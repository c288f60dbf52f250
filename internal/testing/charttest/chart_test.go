package charttest

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func renderings(t *testing.T) map[string][]string {
	cases := map[string][]string{"default values": nil}
	for _, f := range append(ExampleValues(t), CIValues(t)...) {
		cases[f] = []string{"-f", RepoRoot(t) + "/" + f}
	}
	require.Greater(t, len(cases), 6, "the examples' and ci/ values files should be found")
	return cases
}

func TestChartLints(t *testing.T) {
	helm := Helm(t)
	for name, args := range renderings(t) {
		t.Run(name, func(t *testing.T) {
			out, err := RunHelm(helm, append([]string{"lint", "--strict", "--kube-version", KubeVersion, ChartDir(t)}, args...)...)
			require.NoError(t, err)
			assert.Contains(t, string(out), "0 chart(s) failed")
		})
	}
}

func TestChartRendersValidObjects(t *testing.T) {
	for name, args := range renderings(t) {
		t.Run(name, func(t *testing.T) {
			out, err := Render(t, args...)
			require.NoError(t, err)
			objs, err := DecodeAll(out)
			require.NoError(t, err)
			require.NotEmpty(t, objs)
			assert.NoError(t, errors.Join(Check(objs)...))
		})
	}
}

func TestDecodeAllRejectsUnknownFields(t *testing.T) {
	_, err := DecodeAll([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndatta: {}\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "datta")
	_, err = DecodeAll([]byte("apiVersion: v1\nkind: NoSuchKind\nmetadata: {name: x}\n"))
	assert.Error(t, err)
}

func TestCheckFindsBrokenReferences(t *testing.T) {
	objs, err := DecodeAll([]byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: b}}
    spec:
      serviceAccountName: missing
      containers: [{name: c, image: i, volumeMounts: [{name: nowhere, mountPath: /x}]}]
`))
	require.NoError(t, err)
	msgs := errors.Join(Check(objs)...).Error()
	for _, want := range []string{"does not match the pod labels", "serviceAccountName missing", "undefined volume nowhere"} {
		assert.Contains(t, msgs, want)
	}
}

func TestValuesSchemaRejectsBadValues(t *testing.T) {
	for name, set := range map[string]string{
		"unknown top-level key":  "colector.shards=2",
		"wrong type":             "collector.shards=many",
		"unknown nested key":     "collector.shardz=2",
		"value outside the enum": "collector.transport=ssh",
		"bad duration":           "collector.collectionInterval=soon",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Render(t, "--set", set)
			require.Error(t, err)
			assert.True(t, strings.Contains(err.Error(), "schema"), "want a schema error, got: %v", err)
		})
	}
}
