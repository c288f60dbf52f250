package scrapeconv

import (
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
