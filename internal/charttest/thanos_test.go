package charttest

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/edgetel/edgetel/internal/testprog"
)

// The compactor is off by default, refuses the FILESYSTEM bucket it could not reach, and when on
// runs alone (Recreate, one replica) with vertical compaction.
func TestThanosCompactor(t *testing.T) {
	assert.False(t, has(rendered(t), "Deployment", "edgetel-compactor"), "off by default")
	_, err := Render(t, "--set", "thanos.compactor.enabled=true")
	require.ErrorContains(t, err, "needs an object store bucket")

	objs := rendered(t, "--set", "thanos.compactor.enabled=true", "--set", "bucket.existingSecret=my-bucket")
	d := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-compactor")
	assert.EqualValues(t, 1, *d.Spec.Replicas)
	assert.Equal(t, appsv1.RecreateDeploymentStrategyType, d.Spec.Strategy.Type, "never two compactors on one bucket")
	c := container(t, d.Spec.Template.Spec, "compactor")
	assert.Contains(t, c.Args, "--compact.enable-vertical-compaction")
	assert.Equal(t, "my-bucket", volume(t, d.Spec.Template.Spec, "bucket").Secret.SecretName)
	assert.Empty(t, Check(objs))
}

// The compactor's rendered command line starts the real Thanos (EDGETEL_THANOS): every flag the
// chart passes exists in the pinned version. Paths and the address are moved to the test's own.
func TestThanosCompactorArgsRunTheRealThanos(t *testing.T) {
	bin := testprog.Path(t, "EDGETEL_THANOS", "tool-thanos")
	objs := rendered(t, "--set", "thanos.compactor.enabled=true", "--set", "bucket.existingSecret=b",
		"--set", "thanos.compactor.retention.raw=30d")
	d := find[*appsv1.Deployment](t, objs, "Deployment", "edgetel-compactor")
	dir := t.TempDir()
	conf := filepath.Join(dir, "objstore.yml")
	require.NoError(t, os.WriteFile(conf, []byte("type: FILESYSTEM\nconfig:\n  directory: "+filepath.Join(dir, "bucket")+"\n"), 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	var args []string
	for _, a := range container(t, d.Spec.Template.Spec, "compactor").Args {
		switch name, _, _ := strings.Cut(a, "="); name {
		case "--data-dir":
			a = name + "=" + filepath.Join(dir, "data")
		case "--objstore.config-file":
			a = name + "=" + conf
		case "--http-address":
			a = name + "=" + addr
		}
		args = append(args, a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	log, err := os.Create(filepath.Join(dir, "thanos.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	ready := func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for deadline := time.Now().Add(time.Minute); !ready(); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("thanos %s exited (%v):\n%s", strings.Join(args, " "), err, out)
		default:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("thanos compact never became ready:\n%s", out)
		}
	}
}
