package remotewriteexporter

import (
	"fmt"
	"net/http"
	"os"
	"strings"
)

// authFunc returns what sets the Authorization header, or nil. Files are read per request so
// rotated secrets (projected service-account tokens, mounted Secrets) are picked up.
func (c *Config) authFunc() func(*http.Request) error {
	switch {
	case c.BasicAuth != nil:
		ba := *c.BasicAuth
		return func(r *http.Request) error {
			pw := string(ba.Password)
			if ba.PasswordFile != "" {
				b, err := os.ReadFile(ba.PasswordFile)
				if err != nil {
					return fmt.Errorf("basic_auth.password_file: %w", err)
				}
				pw = strings.TrimSpace(string(b))
			}
			r.SetBasicAuth(ba.Username, pw)
			return nil
		}
	case c.BearerTokenFile != "":
		path := c.BearerTokenFile
		return func(r *http.Request) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("bearer_token_file: %w", err)
			}
			r.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
			return nil
		}
	}
	return nil
}
