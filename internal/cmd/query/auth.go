package query

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// Auth checks a request's bearer token, read once at start from a file (a mounted Kubernetes
// Secret). Users and passwords are the web config's job (--web.config.file, bcrypt hashes).
type Auth struct {
	token [sha256.Size]byte // digest of the bearer token
}

// LoadAuth reads the bearer token file; an empty path means no check (nil Auth). Surrounding
// white space is ignored.
func LoadAuth(tokenFile string) (*Auth, error) {
	if tokenFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("read bearer token file: %w", err)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) == 0 {
		return nil, fmt.Errorf("bearer token file %s is empty", tokenFile)
	}
	return &Auth{token: sha256.Sum256(tok)}, nil
}

// allowed reports whether r carries the token. Digests are compared in constant time, so
// neither the token's content nor its length leaks through timing.
func (a *Auth) allowed(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

// Wrap answers 401 to requests without the token; rejected is called for each.
func (a *Auth) Wrap(next http.Handler, rejected func()) http.Handler {
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.allowed(r) {
			rejected()
			w.Header().Set("WWW-Authenticate", `Bearer realm="edgetel-query"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// webConfig is what edgetel-query needs to know of a --web.config.file (Prometheus'
// exporter-toolkit format: tls_server_config, basic_auth_users with bcrypt hashes, ...), which
// exporter-toolkit's web package serves.
type webConfig struct {
	tls   bool // serves HTTPS
	users bool // asks for basic auth
}

// loadWebConfig checks the file as exporter-toolkit does at start (every password a bcrypt
// hash, the certificate and key readable) and says what it turns on. An empty path: none.
func loadWebConfig(path string) (webConfig, error) {
	if path == "" {
		return webConfig{}, nil
	}
	if err := web.Validate(path); err != nil {
		return webConfig{}, fmt.Errorf("web config %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return webConfig{}, fmt.Errorf("read web config: %w", err)
	}
	var c web.Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return webConfig{}, fmt.Errorf("web config %s: %w", path, err)
	}
	return webConfig{tls: c.TLSConfig.IsEnabled(), users: len(c.Users) > 0}, nil
}

var errCleartextCredentials = errors.New("credentials would cross the network in clear text: set tls_server_config in --web.config.file, or listen on a loopback address")
