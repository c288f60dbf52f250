package scrapeconv

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMediaType(t *testing.T) {
	for _, tc := range []struct {
		name, body, contentType, want string
		err                           error
	}{
		{"text", "a 1\n", "text/plain; version=0.0.4", MediaText, nil},
		{"sniffed by cloudcore", "a 1\n", "text/plain; charset=utf-8", MediaText, nil},
		{"no content type", "a 1\n", "", MediaText, nil},
		{"empty 200", "", "text/plain; charset=utf-8", "", ErrEmptyBody},
		{"cut mid-line", "a 1\nb 2", "text/plain", "", ErrTruncated},
		{"openmetrics", "a 1\n# EOF\n", "application/openmetrics-text; version=1.0.0", MediaOpenMetrics, nil},
		{"openmetrics relayed as text", "a 1\n# EOF\n", "text/plain; charset=utf-8", MediaOpenMetrics, nil},
		{"openmetrics without EOF", "a 1\n", "application/openmetrics-text; version=1.0.0", "", ErrMissingEOF},
		{"protobuf", "\x00\x01", "application/vnd.google.protobuf", "", ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MediaType([]byte(tc.body), tc.contentType)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestCheckTextEnd(t *testing.T) {
	for _, tc := range []struct {
		name, body, prev, want string
		cut                    bool
	}{
		{"whole", "# TYPE a gauge\na 1\n# TYPE b counter\nb 2\n", "b", "b", false},
		{"first body", "# TYPE a gauge\na 1\n", "", "a", false},
		{"ends before the last family", "# TYPE a gauge\na 1\n", "b", "", true},
		{"a family went away, the body goes on", "# TYPE a gauge\na 1\n# TYPE c gauge\nc 1\n", "b", "c", false},
		{"header without samples", "# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b counter\n", "", "", true},
		{"histogram cut in its buckets", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\n", "", "", true},
		{"histogram cut after its sum", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\n", "", "", true},
		{"histogram whole", "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "", "h", false},
		{"summary whole", "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count{x=\"y\"} 1\n", "", "s", false},
		{"no TYPE lines", "a 1\n", "a", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckTextEnd([]byte(tc.body), tc.prev)
			if tc.cut {
				require.ErrorIs(t, err, ErrCut)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestCheckTextEndOnCutCaptures cuts the real kubelet captures at every line boundary, as
// cloudcore cuts a relayed body (a dropped tunnel, a line over 64 KiB), and checks the rule with
// the whole capture as the previous body. Every cut is found except the one kind the rule cannot
// see: a cut between two whole series of the last family (only /metrics ends with a family of
// several series, a histogram, so only there).
func TestCheckTextEndOnCutCaptures(t *testing.T) {
	for _, tc := range []struct {
		file   string
		missed int // cuts between series of the last family
	}{
		{"metrics-cadvisor-1.35.txt", 0},
		{"metrics-resource-1.35.txt", 0},
		{"metrics-kubelet-1.21.txt", -1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := fixtureBytes(tc.file)
			require.NoError(t, err)
			prev, err := CheckTextEnd(body, "")
			require.NoError(t, err, "the whole capture passes")
			again, err := CheckTextEnd(body, prev)
			require.NoError(t, err)
			require.Equal(t, prev, again)

			lastFamily := bytes.LastIndex(body, []byte("\n# HELP ")) + 1
			cuts, missed := 0, 0
			for i := 0; i < len(body)-1; i++ {
				if body[i] != '\n' {
					continue
				}
				cuts++
				if _, err := CheckTextEnd(body[:i+1], prev); err == nil {
					require.Greater(t, i, lastFamily, "a cut before the last family is always found")
					missed++
				}
			}
			t.Logf("%s: %d cuts, %d missed", tc.file, cuts, missed)
			assert.Positive(t, cuts)
			if tc.missed >= 0 {
				assert.Equal(t, tc.missed, missed)
				return
			}
			// The last family's series boundaries but the final one: every _count line but the last.
			series := bytes.Count(body[lastFamily:], []byte("_count{"))
			assert.Equal(t, series-1, missed)
		})
	}
}
