package remotewriteexporter

import (
	"testing"
	"time"

	"github.com/golang/snappy"
	prw "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/translator/prometheusremotewrite"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// BenchmarkContribTranslator is the baseline the lean encoder was chosen against: contrib's
// pkg/translator/prometheusremotewrite FromMetrics, then gogo Marshal and snappy, on the same
// 3000-sample batch as BenchmarkEncode. Compare allocs/op: contrib allocates per series and
// per sample, the encoder does not.
func BenchmarkContribTranslator(b *testing.B) {
	md := bigMetrics(200, time.Now().UnixMilli())
	settings := prw.Settings{ExternalLabels: map[string]string{"cluster": "c1"}, DisableTargetInfo: true, DisableScopeInfo: true}
	var buf []byte
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tss, err := prw.FromMetrics(md, settings)
		require.NoError(b, err)
		req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(tss))}
		for _, ts := range tss {
			req.Timeseries = append(req.Timeseries, *ts)
		}
		raw, err := req.Marshal()
		require.NoError(b, err)
		buf = snappy.Encode(buf[:cap(buf)], raw)
	}
	b.ReportMetric(float64(3000*b.N)/b.Elapsed().Seconds(), "samples/s")
}
