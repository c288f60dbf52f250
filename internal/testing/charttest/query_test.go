package charttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/exporter-toolkit/web"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/edgetel/edgetel/internal/testing/tlsutil"
)

func queryContainer(t *testing.T, objs []Object) (corev1.PodSpec, corev1.Container) {
	t.Helper()
	d := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-query")
	return d.Spec.Template.Spec, container(t, d.Spec.Template.Spec, "query")
}

func arg(c corev1.Container, name string) (string, bool) {
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// The probes use the probe listener's /-/healthy and /-/ready, which need no credentials, and
// --query.max-samples follows the memory limit: half of it shared by the concurrent queries.
func TestQueryProbesAndSampleBound(t *testing.T) {
	_, c := queryContainer(t, rendered(t))
	assert.Equal(t, "/-/healthy", c.LivenessProbe.HTTPGet.Path)
	assert.Equal(t, "/-/ready", c.ReadinessProbe.HTTPGet.Path)
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		assert.Equal(t, "probes", p.HTTPGet.Port.StrVal)
	}
	v, _ := arg(c, "--web.probe-listen")
	assert.Equal(t, "0.0.0.0:9091", v)
	assert.Contains(t, portNames(c.Ports), "probes")
	_, on := arg(c, "--web.config.file")
	assert.False(t, on, "no web config by default")

	for want, args := range map[string][]string{
		"3355443":  nil, // 4Gi / 2 / (20 queries × 32 B)
		"6710886":  {"--set", "query.resources.limits.memory=8Gi"},
		"13421772": {"--set", "query.maxConcurrency=5"},
		"1000":     {"--set", "query.queryMaxSamples=1000"},
		"50000000": {"--set", "query.resources.limits=null"},
	} {
		_, c := queryContainer(t, rendered(t, args...))
		v, _ := arg(c, "--query.max-samples")
		assert.Equal(t, want, v, "%v", args)
	}
	_, c = queryContainer(t, rendered(t, "--set", "query.maxConcurrency=5"))
	v, _ = arg(c, "--query.max-concurrency")
	assert.Equal(t, "5", v)
}

// query.web renders a Prometheus web config (bcrypt users, TLS) that exporter-toolkit accepts,
// mounts it and the certificate, and points Grafana's data source at https; users without TLS,
// plain-text passwords and http mirrors are refused.
func TestQueryWebConfig(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pa55"), bcrypt.MinCost)
	require.NoError(t, err)
	_, err = Render(t, "--set", "query.web.basicAuthUsers.grafana="+string(hash))
	require.ErrorContains(t, err, "needs query.web.tls.secretName")
	_, err = Render(t, "--set", "query.web.basicAuthUsers.grafana=pa55", "--set", "query.web.tls.secretName=q-tls")
	require.ErrorContains(t, err, "basicAuthUsers", "a plain-text password is refused by the schema")

	objs := rendered(t, "--set", "query.web.basicAuthUsers.grafana="+string(hash), "--set", "query.web.tls.secretName=q-tls")
	pod, c := queryContainer(t, objs)
	v, _ := arg(c, "--web.config.file")
	assert.Equal(t, "/etc/edgetel/query-web/web-config.yml", v)
	assert.Equal(t, "edgetel-query-web", volume(t, pod, "web").Secret.SecretName)
	assert.Equal(t, "q-tls", volume(t, pod, "tls").Secret.SecretName)
	sec := find[*corev1.Secret](t, objs, "Secret", "edgetel-query-web")
	conf := sec.StringData["web-config.yml"]
	assert.Contains(t, conf, "cert_file: /etc/edgetel/query-tls/tls.crt")

	// exporter-toolkit, which edgetel-query serves with, accepts it (with the test's own certificate).
	dir := t.TempDir()
	files, err := tlsutil.Ensure(dir, tlsutil.Options{})
	require.NoError(t, err)
	conf = strings.NewReplacer("/etc/edgetel/query-tls/tls.crt", files.ServerCertFile, "/etc/edgetel/query-tls/tls.key", files.ServerKeyFile).Replace(conf)
	path := filepath.Join(dir, "web-config.yml")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
	require.NoError(t, web.Validate(path))

	ds := find[*corev1.ConfigMap](t, objs, "ConfigMap", "edgetel-datasource")
	assert.Contains(t, ds.Data["edgetel-datasource.yaml"], "https://edgetel-query.edgetel.svc:9090")

	objs = rendered(t, "--set", "query.web.existingSecret=mine")
	pod, _ = queryContainer(t, objs)
	assert.Equal(t, "mine", volume(t, pod, "web").Secret.SecretName)
	assert.False(t, has(objs, "Secret", "edgetel-query-web"))
}

// query.bucket.existingSecret gives edgetel-query its own (read-only) bucket credentials; the
// collectors keep the chart's.
func TestQueryReadOnlyBucketSecret(t *testing.T) {
	pod, _ := queryContainer(t, rendered(t))
	assert.Equal(t, "edgetel-bucket", volume(t, pod, "bucket").Secret.SecretName)
	objs := rendered(t, "--set", "query.bucket.existingSecret=bucket-read-only")
	pod, _ = queryContainer(t, objs)
	assert.Equal(t, "bucket-read-only", volume(t, pod, "bucket").Secret.SecretName)
	sts := find[*appsv1.StatefulSet](t, objs, "StatefulSet", "edgetel-collector")
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			assert.NotEqual(t, "bucket-read-only", v.Secret.SecretName)
		}
	}
}
