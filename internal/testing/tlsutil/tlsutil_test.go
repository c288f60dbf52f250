package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEnsureGeneratesThenReads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	files, err := Ensure(dir, Options{})
	require.NoError(t, err)
	assert.Equal(t, FilesIn(dir), files)
	ca, err := os.ReadFile(files.CAFile)
	require.NoError(t, err)

	again, err := Ensure(dir, Options{})
	require.NoError(t, err)
	assert.Equal(t, files, again)
	ca2, err := os.ReadFile(files.CAFile)
	require.NoError(t, err)
	assert.Equal(t, ca, ca2, "existing files are read, not replaced")

	info, err := os.Stat(files.ServerKeyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestCertificates(t *testing.T) {
	files, err := Ensure(t.TempDir(), Options{})
	require.NoError(t, err)
	leaf := load(t, files.ServerCertFile)
	assert.Equal(t, "127.0.0.1", leaf.IPAddresses[0].String())
	assert.Equal(t, []string{"localhost"}, leaf.DNSNames)
	key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	require.True(t, ok, "ECDSA keys")
	assert.Equal(t, elliptic.P256(), key.Curve)
	assert.True(t, load(t, files.CAFile).IsCA)
	assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, load(t, files.ClientCertFile).ExtKeyUsage)
}

func load(t *testing.T, path string) *x509.Certificate {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	block, _ := pem.Decode(data)
	require.NotNil(t, block)
	c, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return c
}

func TestEnsureRejectsPartialOrForeignPKI(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, CAFileName), []byte("x"), 0o644))
	_, err := Ensure(dir, Options{})
	assert.ErrorContains(t, err, "provide all five files or none")

	// A server certificate from another CA does not verify.
	a, b := t.TempDir(), t.TempDir()
	fa, err := Ensure(a, Options{})
	require.NoError(t, err)
	fb, err := Ensure(b, Options{})
	require.NoError(t, err)
	data, err := os.ReadFile(fb.CAFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(fa.CAFile, data, 0o644))
	_, err = Ensure(a, Options{})
	assert.ErrorContains(t, err, "does not verify")

	require.NoError(t, os.WriteFile(fa.CAFile, []byte("not pem"), 0o644))
	_, err = Ensure(a, Options{})
	assert.ErrorContains(t, err, "no PEM certificate")
}

// TestHandshakes runs a real TLS server with and without a required client certificate.
func TestHandshakes(t *testing.T) {
	files, err := Ensure(t.TempDir(), Options{})
	require.NoError(t, err)
	for _, require_ := range []bool{false, true} {
		srvCfg, err := files.ServerConfig(require_)
		require.NoError(t, err)
		ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
		require.NoError(t, err)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		})}
		go srv.Serve(ln)
		for _, withCert := range []bool{false, true} {
			cliCfg, err := files.ClientConfig(withCert)
			require.NoError(t, err)
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cliCfg}}
			for _, host := range []string{"127.0.0.1", "localhost"} {
				_, port, _ := net.SplitHostPort(ln.Addr().String())
				resp, err := c.Get("https://" + net.JoinHostPort(host, port) + "/")
				if require_ && !withCert {
					assert.Error(t, err, "client certificate required")
					continue
				}
				require.NoError(t, err, "require=%v withCert=%v host=%s", require_, withCert, host)
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode)
			}
		}
		srv.Close()
	}
}
