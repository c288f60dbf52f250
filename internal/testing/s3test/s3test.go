// Package s3test runs a real S3 server in tests: the Versity S3 Gateway (EDGETEL_VERSITYGW, built
// by `make tool-versitygw`) with its posix backend, which serves a directory over the S3 API
// (signature V4, multipart uploads). A test can kill the server (SIGKILL) and start it again on
// the same address and data, to stage an S3 outage.
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// Test credentials of the server's root account.
const (
	AccessKey = "EDGETELTESTACCESSKEY"
	SecretKey = "edgetel-test-secret-key-0123456789"
	Region    = "us-east-1"
)

// Bin returns the versitygw binary: the test is skipped when EDGETEL_VERSITYGW is unset.
func Bin(t testing.TB) string {
	t.Helper()
	return testprog.Path(t, "EDGETEL_VERSITYGW", "tool-versitygw")
}

// Server is a running versitygw serving one bucket.
type Server struct {
	// Endpoint is host:port, as objstore's S3 config takes it (plain HTTP: insecure: true).
	Endpoint string
	Bucket   string
	// Root is the posix backend's directory: each subdirectory is a bucket.
	Root string
	// iamDir holds the internal IAM service's accounts (none but root). Without an IAM service
	// versitygw answers an unknown access key with its own XAdminUserNotFound (404); with one, it
	// answers InvalidAccessKeyId (403) as AWS does.
	iamDir string
	Log    string

	t   testing.TB
	bin string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	logs   int
}

// Start runs versitygw on a free loopback port with an empty bucket named bucket, waits until it
// accepts connections and stops it when the test ends.
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	endpoint := l.Addr().String()
	require.NoError(t, l.Close())
	return StartAt(t, bucket, endpoint)
}

// StartAt is Start on a given host:port (an example's fixed address).
func StartAt(t testing.TB, bucket, endpoint string) *Server {
	t.Helper()
	s := &Server{Endpoint: endpoint, Bucket: bucket, Root: t.TempDir(), iamDir: t.TempDir(), t: t, bin: Bin(t)}
	// The posix backend serves every directory under Root as a bucket.
	require.NoError(t, os.Mkdir(filepath.Join(s.Root, bucket), 0o750))
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// Restart starts the server (again) on its address and data; it must not be running.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Nil(s.t, s.cmd, "versitygw is already running")
	if c, err := net.DialTimeout("tcp", s.Endpoint, time.Second); err == nil {
		c.Close()
		s.t.Fatalf("%s is already in use: a stray versitygw (or another server) listens there", s.Endpoint)
	}
	s.logs++
	s.Log = filepath.Join(filepath.Dir(s.Root), fmt.Sprintf("versitygw-%d.log", s.logs))
	logf, err := os.Create(s.Log)
	require.NoError(s.t, err)
	cmd := exec.Command(s.bin, "--port", s.Endpoint, "--access", AccessKey, "--secret", SecretKey,
		"--region", Region, "--iam-dir", s.iamDir, "--quiet", "posix", s.Root)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A test binary that dies (timeout, kill) takes the server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(s.t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", s.Endpoint, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(s.Log)
			s.t.Fatalf("versitygw exited before listening on %s:\n%s", s.Endpoint, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw does not listen on %s after a minute", s.Endpoint)
		}
	}
}

// Kill stops the server with SIGKILL (no clean shutdown: an outage as a crash or a cut link
// looks to a client) and waits for it to exit. A stopped server is left alone.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Config is objstore's S3 provider configuration (Thanos' `config:` section) for the bucket,
// with the given credentials.
func (s *Server) Config(accessKey, secretKey string) map[string]any {
	return map[string]any{
		"bucket": s.Bucket, "endpoint": s.Endpoint, "region": Region, "insecure": true,
		"access_key": accessKey, "secret_key": secretKey,
	}
}

// YAML is Thanos' bucket configuration file for the bucket with the server's credentials.
func (s *Server) YAML() string {
	return fmt.Sprintf("type: S3\nconfig:\n  bucket: %s\n  endpoint: %q\n  region: %s\n  insecure: true\n  access_key: %s\n  secret_key: %s\n",
		s.Bucket, s.Endpoint, Region, AccessKey, SecretKey)
}

// Parts returns how many parts the object was uploaded in, from its ETag ("<md5>-<parts>" for a
// multipart upload); "" for a single PUT.
func (s *Server) Parts(t testing.TB, name string) string {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Region: Region})
	require.NoError(t, err)
	info, err := c.StatObject(context.Background(), s.Bucket, name, minio.StatObjectOptions{})
	require.NoError(t, err)
	_, parts, _ := strings.Cut(strings.Trim(info.ETag, `"`), "-")
	return parts
}
