package charttest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// imageValues lists the dotted paths of values.yaml's images: every mapping with a `repository`.
func imageValues(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ChartDir(t), "values.yaml"))
	require.NoError(t, err)
	var values map[string]any
	require.NoError(t, sigsyaml.Unmarshal(b, &values))
	var paths []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		if _, ok := m["repository"]; ok {
			paths = append(paths, prefix)
			return
		}
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(strings.TrimPrefix(prefix+"."+k, "."), sub)
			}
		}
	}
	walk("", values)
	sort.Strings(paths)
	return paths
}

// podSpecs returns every pod template (or pod) the rendering holds, by object.
func podSpecs(objs []Object) map[string]corev1.PodSpec {
	specs := map[string]corev1.PodSpec{}
	for _, o := range objs {
		id := o.GVK.Kind + "/" + o.Name
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			specs[id] = v.Spec.Template.Spec
		case *appsv1.StatefulSet:
			specs[id] = v.Spec.Template.Spec
		case *appsv1.DaemonSet:
			specs[id] = v.Spec.Template.Spec
		case *batchv1.Job:
			specs[id] = v.Spec.Template.Spec
		case *batchv1.CronJob:
			specs[id] = v.Spec.JobTemplate.Spec.Template.Spec
		case *corev1.Pod:
			specs[id] = v.Spec
		}
	}
	return specs
}

// Every image the chart can run takes a digest (`<image>.digest`), and a digest wins over the
// tag: with a distinct digest set on each image value, every container of every rendering
// (default, examples, ci values: together they turn every workload on) runs an image pinned by one
// of them, and each image value is used by some container.
func TestEveryImageCanBePinnedByDigest(t *testing.T) {
	paths := imageValues(t)
	require.GreaterOrEqual(t, len(paths), 7, "image values found: %v", paths)
	pathOf := map[string]string{} // digest -> image value
	var set []string
	for _, p := range paths {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(p)))
		pathOf[d] = p
		set = append(set, "--set", p+".digest="+d)
	}
	used := map[string]bool{}
	for name, args := range renderings(t) {
		for id, spec := range podSpecs(rendered(t, append(slices.Clone(args), set...)...)) {
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				repo, digest, ok := strings.Cut(c.Image, "@")
				if !assert.True(t, ok, "%s: %s container %s runs %s, not pinned by digest", name, id, c.Name, c.Image) {
					continue
				}
				assert.NotContains(t, repo, ":", "%s: %s container %s: a digest replaces the tag", name, id, c.Name)
				p, ok := pathOf[digest]
				assert.True(t, ok, "%s: %s container %s runs %s, a digest of no image value", name, id, c.Name, c.Image)
				used[p] = true
			}
		}
	}
	for _, p := range paths {
		assert.True(t, used[p], "image value %s is used by no container in any rendering", p)
	}
}

// Without digests, edgetel's own images run at the chart's appVersion: the release ties the two.
func TestEdgetelImagesDefaultToAppVersion(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(ChartDir(t), "Chart.yaml"))
	require.NoError(t, err)
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	require.NoError(t, sigsyaml.Unmarshal(b, &chart))
	objs := rendered(t, "--set", "query.enabled=true")
	for id, spec := range podSpecs(objs) {
		for _, c := range spec.Containers {
			if strings.HasPrefix(c.Image, "ghcr.io/edgetel/") {
				assert.True(t, strings.HasSuffix(c.Image, ":"+chart.AppVersion), "%s container %s runs %s", id, c.Name, c.Image)
			}
		}
	}
}

// A packaged chart holds no symlinks (helm package would follow them, an OCI chart carries
// none), so the dashboards are real files that must stay equal to examples/dashboards.
func TestChartHasNoSymlinksAndItsDashboardsMatchTheExamples(t *testing.T) {
	chart := ChartDir(t)
	require.NoError(t, filepath.WalkDir(chart, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			t.Errorf("%s is a symlink", path)
		}
		return nil
	}))
	examples, err := filepath.Glob(filepath.Join(RepoRoot(t), "examples", "dashboards", "*.json"))
	require.NoError(t, err)
	inChart, err := filepath.Glob(filepath.Join(chart, "dashboards", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, examples)
	base := func(files []string) []string {
		var names []string
		for _, f := range files {
			names = append(names, filepath.Base(f))
		}
		return names
	}
	require.Equal(t, base(examples), base(inChart), "run `make dashboards`")
	for _, f := range examples {
		want, err := os.ReadFile(f)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(chart, "dashboards", filepath.Base(f)))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, got), "charts/edgetel/dashboards/%s differs from examples/dashboards: run `make dashboards`", filepath.Base(f))
	}
}
