package objstoreexporter

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/edgetel/edgetel/internal/testing/testprog"
)

// prometheusQuery starts the real Prometheus server (EDGETEL_PROMETHEUS) on a copy of dir, a
// TSDB directory of blocks downloaded from the bucket, and returns a function that runs an
// instant query through its HTTP API. Skips when EDGETEL_PROMETHEUS is unset.
func prometheusQuery(t *testing.T, dir string) func(q string, at int64) map[string]string {
	bin := testprog.Path(t, "EDGETEL_PROMETHEUS", "tool-prometheus")

	work := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(work, "data"), os.DirFS(dir)))
	require.NoError(t, os.WriteFile(filepath.Join(work, "prometheus.yml"), []byte("global: {}\n"), 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	cmd := exec.Command(bin, "--config.file="+filepath.Join(work, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(work, "data"), "--storage.tsdb.retention.time=100y",
		"--web.listen-address="+addr)
	log, err := os.Create(filepath.Join(work, "prometheus.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "prometheus never became ready (see %s)", log.Name())

	return func(q string, at int64) map[string]string {
		u := fmt.Sprintf("http://%s/api/v1/query?query=%s&time=%s", addr, url.QueryEscape(q), strconv.FormatFloat(float64(at)/1000, 'f', 3, 64))
		resp, err := http.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		require.Equal(t, "success", body.Status, body.Error)
		out := map[string]string{}
		for _, r := range body.Data.Result {
			out[r.Metric["sensor"]] = fmt.Sprint(r.Value[1])
		}
		return out
	}
}
