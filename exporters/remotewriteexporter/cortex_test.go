package remotewriteexporter

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/testprog"
	"github.com/edgetel/edgetel/internal/testing/thanostest"
)

// cortex is a real single-process Cortex (EDGETEL_CORTEX, `make tool-cortex`) started with
// examples/cortex-mimir/cortex.yaml as written: tenants by X-Scope-OrgID, a 6 h out-of-order
// window.
type cortex struct {
	base string // http://127.0.0.1:port
}

func startCortex(t *testing.T) *cortex {
	t.Helper()
	bin := testprog.Path(t, "EDGETEL_CORTEX", "tool-cortex")
	cfg, err := filepath.Abs(filepath.Join("..", "..", "examples", "cortex-mimir", "cortex.yaml"))
	require.NoError(t, err)
	p := &thanostest.Process{HTTP: thanostest.FreeAddr(t)}
	_, httpPort, _ := strings.Cut(p.HTTP, ":")
	_, grpcPort, _ := strings.Cut(thanostest.FreeAddr(t), ":")
	t.Setenv("CORTEX_HTTP_PORT", httpPort)
	t.Setenv("CORTEX_GRPC_PORT", grpcPort)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "alerts"), 0o755))
	t.Setenv("CORTEX_DIR", dir)
	thanostest.StartProgram(t, p, bin, "cortex", "/ready", "-config.file="+cfg, "-config.expand-env=true")
	return &cortex{base: "http://" + p.HTTP}
}

func (c *cortex) write() string { return c.base + "/api/v1/push" }

// samples returns the samples of testMetric Cortex holds for tenant in the twelve hours before
// at, by series (gaugeKey form).
func (c *cortex) samples(t *testing.T, tenant string, at time.Time) map[string][]model.SamplePair {
	t.Helper()
	a, err := thanostest.QueryAs(t, c.base+"/prometheus", http.Header{"X-Scope-Orgid": {tenant}},
		testMetric+"[12h]", at, url.Values{})
	if err != nil {
		return nil
	}
	return byGaugeKey(a.Matrix)
}

// edgeremotewrite → real Cortex, two tenants (X-Scope-OrgID), RW 1.0: a backlog inside the
// out-of-order window lands with its original timestamps; one older than the window, and a
// changed value at a stored timestamp, are refused (400): only those samples are dropped,
// counted as rejected, never resent; a repeat of stored samples is taken. Read back through
// Cortex's Prometheus API, per tenant, each sample once.
func TestCortexTenantsWindowAndConflicts(t *testing.T) {
	c := startCortex(t)
	testTenantsWindowAndConflicts(t, c.write(), "X-Scope-OrgID", func(tenant string, at time.Time) map[string][]model.SamplePair {
		return c.samples(t, tenant, at)
	})
}
