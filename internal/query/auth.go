package query

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Auth checks a request's credentials: a bearer token, or a user and password of HTTP basic
// auth. Both come from files (a mounted Kubernetes Secret), read once at start.
type Auth struct {
	token    [sha256.Size]byte // digest of the bearer token; valid when hasToken
	hasToken bool
	users    map[string][sha256.Size]byte // user -> digest of the password
}

// LoadAuth reads the credential files; both empty means no check (nil Auth).
//
// tokenFile holds the bearer token (surrounding white space is ignored). usersFile holds one
// "user:password" per line; empty lines and lines starting with # are skipped.
func LoadAuth(tokenFile, usersFile string) (*Auth, error) {
	if tokenFile == "" && usersFile == "" {
		return nil, nil
	}
	a := &Auth{users: map[string][sha256.Size]byte{}}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read bearer token file: %w", err)
		}
		tok := bytes.TrimSpace(b)
		if len(tok) == 0 {
			return nil, fmt.Errorf("bearer token file %s is empty", tokenFile)
		}
		a.token, a.hasToken = sha256.Sum256(tok), true
	}
	if usersFile != "" {
		if err := a.readUsers(usersFile); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (a *Auth) readUsers(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read basic auth file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" || pass == "" {
			// The line may hold a password: name the line, never quote it.
			return fmt.Errorf("basic auth file %s line %d: want user:password", path, n)
		}
		a.users[user] = sha256.Sum256([]byte(pass))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read basic auth file: %w", err)
	}
	if len(a.users) == 0 {
		return fmt.Errorf("basic auth file %s has no user", path)
	}
	return nil
}

// allowed reports whether r carries valid credentials. Digests are compared in constant time,
// so neither a token's content nor its length leaks through timing.
func (a *Auth) allowed(r *http.Request) bool {
	if user, pass, ok := r.BasicAuth(); ok {
		want, known := a.users[user]
		got := sha256.Sum256([]byte(pass))
		return known && subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !a.hasToken {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
}

// Wrap answers 401 to requests without valid credentials; rejected is called for each.
func (a *Auth) Wrap(next http.Handler, rejected func()) http.Handler {
	if a == nil {
		return next
	}
	challenge := `Bearer realm="edgetel-query"`
	if len(a.users) > 0 {
		challenge = `Basic realm="edgetel-query", charset="UTF-8"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.allowed(r) {
			rejected()
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var errCleartextCredentials = errors.New("credentials would cross the network in clear text: set --web.tls-cert-file and --web.tls-key-file, or listen on a loopback address")
