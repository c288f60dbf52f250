package remotewriteexporter

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/basicauthextension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/bearertokenauthextension"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/edgetel/edgetel/exporters/remotewriteexporter/internal/metadata"
)

// extHost is a host with the given extensions, as the Collector's service would be.
type extHost map[component.ID]component.Component

func (h extHost) GetExtensions() map[component.ID]component.Component { return h }

// startExtension builds and starts an extension from its factory and the config in conf, as
// the Collector does from the extensions section.
func startExtension(t *testing.T, f extension.Factory, name string, conf map[string]any) (component.ID, component.Component) {
	t.Helper()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(conf).Unmarshal(cfg))
	id := component.MustNewIDWithName(f.Type().String(), name)
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	return id, ext
}

// Credentials the Collector way: auth: {authenticator: ...} with contrib's basicauth (password
// from a file, as a mounted Secret gives it) or bearertokenauth (a token file, re-read when it
// is rotated) sets the Authorization header of every request.
func TestAuthExtensions(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pwFile, []byte("s3cret\n"), 0o600))
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tok-1"), 0o600))

	for _, tc := range []struct {
		name    string
		factory extension.Factory
		conf    map[string]any
		ok      func(r *http.Request) bool
	}{
		{"basicauth", basicauthextension.NewFactory(),
			map[string]any{"client_auth": map[string]any{"username": "edge", "password_file": pwFile}},
			func(r *http.Request) bool {
				user, pw, ok := r.BasicAuth()
				return ok && user == "edge" && pw == "s3cret"
			}},
		{"bearertokenauth", bearertokenauthextension.NewFactory(),
			map[string]any{"filename": tokenFile},
			func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer tok-1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The remote end refuses requests without the credentials, as an auth proxy does (the
			// bearertokenauth extension may read its file after the first request: that one is
			// refused, held and probed again).
			sk := newSink(t)
			sk.respond = func(n int, _ *prompb.WriteRequest, w http.ResponseWriter) bool {
				if !tc.ok(sk.request(n)) {
					http.Error(w, "unauthorized", http.StatusUnauthorized)
					return true
				}
				return false
			}
			id, ext := startExtension(t, tc.factory, "rw", tc.conf)
			cfg := testConfig(t, sk.url())
			cfg.Auth = configoptional.Some(configauth.Config{AuthenticatorID: id})
			require.NoError(t, cfg.Validate())
			e := newExporter(cfg, settingsWithLogger(zap.NewNop()))
			require.NoError(t, e.start(context.Background(), extHost{id: ext}))
			t.Cleanup(func() { _ = e.shutdown(context.Background()) })
			require.NoError(t, e.push(context.Background(), gaugeBatch(3, 0, 1000)))
			waitFor(t, 10*time.Second, "delivery with the credentials", func() bool { return sk.samples() == 3 })
			assert.Zero(t, e.tel.droppedTotal.Load())
		})
	}
}

// The old keys keep working for one release, with a warning naming the extensions; set together
// with auth they are refused.
func TestDeprecatedAuthKeysWarn(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1/api/v1/write")
	cfg.BearerTokenFile = "/run/token"
	core, logs := observer.New(zap.WarnLevel)
	newExporter(cfg, settingsWithLogger(zap.New(core)))
	require.Len(t, logs.FilterMessageSnippet("basic_auth and bearer_token_file are deprecated").All(), 1)

	cfg.Auth = configoptional.Some(configauth.Config{AuthenticatorID: component.MustNewID("bearertokenauth")})
	assert.ErrorContains(t, cfg.Validate(), "auth: cannot be used together with the deprecated basic_auth or bearer_token_file")

	quiet, quietLogs := observer.New(zap.WarnLevel)
	cfg.BearerTokenFile = ""
	newExporter(cfg, settingsWithLogger(zap.New(quiet)))
	assert.Zero(t, quietLogs.Len())
}

func settingsWithLogger(l *zap.Logger) exporter.Settings {
	set := exportertest.NewNopSettings(metadata.Type)
	set.Logger = l
	return set
}
