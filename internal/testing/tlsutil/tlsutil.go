// Package tlsutil generates and loads the certificates of a small private PKI: one CA (ECDSA P-256,
// as KubeEdge requires for its tunnel), a server certificate and a client certificate signed by it.
// edgesim writes them, and the receiver and tests load them.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names inside a TLS directory.
const (
	CAFileName         = "ca.crt"
	ServerCertFileName = "server.crt"
	ServerKeyFileName  = "server.key"
	ClientCertFileName = "client.crt"
	ClientKeyFileName  = "client.key"
)

// Files are the paths of a TLS directory's PEM files.
type Files struct {
	CAFile         string
	ServerCertFile string
	ServerKeyFile  string
	ClientCertFile string
	ClientKeyFile  string
}

// FilesIn names the files of dir, without touching the filesystem.
func FilesIn(dir string) Files {
	return Files{
		CAFile:         filepath.Join(dir, CAFileName),
		ServerCertFile: filepath.Join(dir, ServerCertFileName),
		ServerKeyFile:  filepath.Join(dir, ServerKeyFileName),
		ClientCertFile: filepath.Join(dir, ClientCertFileName),
		ClientKeyFile:  filepath.Join(dir, ClientKeyFileName),
	}
}

func (f Files) all() []string {
	return []string{f.CAFile, f.ServerCertFile, f.ServerKeyFile, f.ClientCertFile, f.ClientKeyFile}
}

// Options shape generated certificates.
type Options struct {
	// Hosts are the server certificate's SANs (IPs or DNS names); default 127.0.0.1 and localhost.
	Hosts []string
	// Validity of every certificate; default one year.
	Validity time.Duration
	// CommonName of the CA; default "edgetel-ca".
	CommonName string
}

func (o Options) withDefaults() Options {
	if len(o.Hosts) == 0 {
		o.Hosts = []string{"127.0.0.1", "localhost"}
	}
	if o.Validity <= 0 {
		o.Validity = 365 * 24 * time.Hour
	}
	if o.CommonName == "" {
		o.CommonName = "edgetel-ca"
	}
	return o
}

// Ensure returns the files of dir, generating all of them when none exists. When all exist they
// are loaded and checked (the server and client certificates must verify against the CA); a
// directory holding only some of them is an error, so a half-written PKI is never silently
// replaced.
func Ensure(dir string, opts Options) (Files, error) {
	files := FilesIn(dir)
	var present, missing []string
	for _, p := range files.all() {
		_, err := os.Stat(p)
		switch {
		case err == nil:
			present = append(present, p)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, p)
		default:
			return Files{}, fmt.Errorf("tls dir %s: %w", dir, err)
		}
	}
	switch {
	case len(missing) == 0:
		if err := files.Check(); err != nil {
			return Files{}, err
		}
		return files, nil
	case len(present) > 0:
		return Files{}, fmt.Errorf("tls dir %s holds %v but not %v: provide all five files or none", dir, present, missing)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("creating tls dir: %w", err)
	}
	if err := Generate(files, opts); err != nil {
		return Files{}, err
	}
	return files, nil
}

// Generate writes a new CA and a server and a client certificate signed by it to files.
func Generate(files Files, opts Options) error {
	opts = opts.withDefaults()
	now := time.Now().Add(-time.Hour) // tolerate small clock skew between processes
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: opts.CommonName, Organization: []string{"edgetel"}},
		NotBefore:             now,
		NotAfter:              now.Add(opts.Validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("parsing CA certificate: %w", err)
	}
	if err := writePEM(files.CAFile, "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}
	server := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "edgesim-cloudcore", Organization: []string{"edgetel"}},
		NotBefore:    now,
		NotAfter:     now.Add(opts.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range opts.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			server.IPAddresses = append(server.IPAddresses, ip)
		} else {
			server.DNSNames = append(server.DNSNames, h)
		}
	}
	if err := issue(server, ca, caKey, files.ServerCertFile, files.ServerKeyFile); err != nil {
		return err
	}
	client := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "edgetel-collector", Organization: []string{"edgetel"}},
		NotBefore:    now,
		NotAfter:     now.Add(opts.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return issue(client, ca, caKey, files.ClientCertFile, files.ClientKeyFile)
}

func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating key for %s: %w", tmpl.Subject.CommonName, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("creating certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding key for %s: %w", tmpl.Subject.CommonName, err)
	}
	if err := writePEM(keyFile, "EC PRIVATE KEY", keyDER, 0o600); err != nil {
		return err
	}
	return writePEM(certFile, "CERTIFICATE", der, 0o644)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // crypto/rand never fails on Linux
	}
	return n
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// CertPool loads a PEM CA bundle.
func CertPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// Check loads every file and verifies the server and client certificates against the CA.
func (f Files) Check() error {
	pool, err := CertPool(f.CAFile)
	if err != nil {
		return err
	}
	pairs := []struct {
		cert, key string
		usage     x509.ExtKeyUsage
	}{
		{f.ServerCertFile, f.ServerKeyFile, x509.ExtKeyUsageServerAuth},
		{f.ClientCertFile, f.ClientKeyFile, x509.ExtKeyUsageClientAuth},
	}
	for _, p := range pairs {
		pair, err := tls.LoadX509KeyPair(p.cert, p.key)
		if err != nil {
			return fmt.Errorf("loading %s / %s: %w", p.cert, p.key, err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return fmt.Errorf("parsing %s: %w", p.cert, err)
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{p.usage}})
		if err != nil {
			return fmt.Errorf("%s does not verify against %s: %w", p.cert, f.CAFile, err)
		}
	}
	return nil
}

// ServerConfig is a TLS 1.2+ server configuration with the server certificate. Without
// requireClientCert it behaves like cloudcore's stream server: a client certificate is requested
// but neither required nor verified (tls.RequestClientCert). With it, clients must present a
// certificate that verifies against the CA.
func (f Files) ServerConfig(requireClientCert bool) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(f.ServerCertFile, f.ServerKeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading server certificate: %w", err)
	}
	pool, err := CertPool(f.CAFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequestClientCert,
	}
	if requireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig trusts the CA and, when withClientCert, presents the client certificate.
func (f Files) ClientConfig(withClientCert bool) (*tls.Config, error) {
	pool, err := CertPool(f.CAFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if withClientCert {
		pair, err := tls.LoadX509KeyPair(f.ClientCertFile, f.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
