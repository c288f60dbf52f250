package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The registration itself runs against a real API server in internal/testing/testcluster/e2e; here, the
// flags it refuses before any request.
func TestKubeFlagErrors(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	// A reachable-looking cluster that nothing serves: errors below come before any request.
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--tls-dir", t.TempDir(), "--nodes", "2", "--listen", "127.0.0.1:0", "--admin-listen", ""}
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"missing kubeconfig": {[]string{"--kubeconfig", "/nonexistent/kubeconfig"}, "--kubeconfig"},
		"bad node ip":        {[]string{"--kubeconfig", kubeconfig, "--kube-node-ip", "edge"}, "--kube-node-ip"},
		"zero sync":          {[]string{"--kubeconfig", kubeconfig, "--kube-sync", "0"}, "--kube-sync"},
		"unreachable server": {[]string{"--kubeconfig", kubeconfig}, "registering the fleet"},
	} {
		err := run(context.Background(), append(append([]string{}, base...), c.args...), io.Discard, nil)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), c.want, name)
		}
	}
}
