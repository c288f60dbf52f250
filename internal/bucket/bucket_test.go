package bucket

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"
)

func TestParseYAMLErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"bad yaml":    {"type: [", "parse bucket config"},
		"unknown key": {"type: FILESYSTEM\nconfig: {directory: /x}\nbogus: 1", "bogus"},
		"no type":     {"config: {directory: /x}", "type is required"},
		"unsupported": {"type: SWIFT\nconfig: {}", `"SWIFT" is not supported`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewFromYAML(context.Background(), []byte(tc.yaml), nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestProviderConfigErrors(t *testing.T) {
	_, err := NewFromYAML(context.Background(), []byte("type: filesystem\nconfig: {}"), nil)
	require.ErrorContains(t, err, "missing directory")
	_, err = NewFromYAML(context.Background(), []byte("type: S3\nconfig: {bucket: b, endpoint: 127.0.0.1:9000, nonsense: 1}"), nil)
	require.ErrorContains(t, err, "open S3 bucket")
	// GCS and AZURE are linked in: their own validation answers (before any network use).
	_, err = NewFromYAML(context.Background(), []byte("type: GCS\nconfig: {}"), nil)
	require.ErrorContains(t, err, "missing Google Cloud Storage bucket name")
	_, err = NewFromYAML(context.Background(), []byte("type: azure\nconfig: {container: c}"), nil)
	require.ErrorContains(t, err, "storage_account_name is required")
}

func TestS3ConfigOpensWithoutNetwork(t *testing.T) {
	b, err := NewFromYAML(context.Background(), []byte(`type: S3
config: {bucket: edgetel, endpoint: "127.0.0.1:9000", access_key: a, secret_key: b, insecure: true}
prefix: site-a`), nil)
	require.NoError(t, err)
	assert.Equal(t, objstore.S3, b.Provider())
	require.NoError(t, b.Close())
}

func TestDefaultYAMLIsFilesystemUnderDataDir(t *testing.T) {
	dir := t.TempDir()
	b, err := NewFromYAML(context.Background(), DefaultYAML(dir), nil)
	require.NoError(t, err)
	require.NoError(t, b.Upload(context.Background(), "x/y", strings.NewReader("hello")))
	got, err := os.ReadFile(filepath.Join(dir, DefaultDirName, "x", "y"))
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))
}

// recordingBucket remembers the order of uploads.
type recordingBucket struct {
	objstore.Bucket
	mu    sync.Mutex
	names []string
}

func (r *recordingBucket) Upload(ctx context.Context, name string, rd io.Reader, opts ...objstore.ObjectUploadOption) error {
	r.mu.Lock()
	r.names = append(r.names, name)
	r.mu.Unlock()
	return r.Bucket.Upload(ctx, name, rd, opts...)
}

func writeBlock(t *testing.T, dir string) ulid.ULID {
	t.Helper()
	w, err := tsdb.NewBlockWriter(promslog.NewNopLogger(), dir, tsdb.DefaultBlockDuration)
	require.NoError(t, err)
	app := w.Appender(context.Background())
	for i := int64(0); i < 100; i++ {
		_, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "a"), i*1000, float64(i))
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	id, err := w.Flush(context.Background())
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return id
}

func TestUploadOrderAndList(t *testing.T) {
	ctx := context.Background()
	local := t.TempDir()
	id := writeBlock(t, local)
	fs, err := NewFromYAML(ctx, DefaultYAML(t.TempDir()), nil)
	require.NoError(t, err)
	bkt := &recordingBucket{Bucket: fs}

	m, err := ReadMetaFromDir(filepath.Join(local, id.String()))
	require.NoError(t, err)
	require.ErrorContains(t, Upload(ctx, bkt, filepath.Join(local, id.String()), m, nil), "empty external labels")
	assert.Empty(t, bkt.names, "nothing uploaded for a block that fails validation")

	m.Thanos = Thanos{Labels: map[string]string{"cluster": "c1"}, Source: SourceSidecar}
	require.NoError(t, m.FillFiles(filepath.Join(local, id.String())))
	require.NoError(t, Upload(ctx, bkt, filepath.Join(local, id.String()), m, nil))
	require.Equal(t, []string{id.String() + "/chunks/000001", id.String() + "/index", id.String() + "/meta.json"}, bkt.names)

	// A partial upload (no meta.json) is not listed.
	partial := ulid.MustNew(ulid.Now(), nil)
	require.NoError(t, fs.Upload(ctx, partial.String()+"/index", bytes.NewReader([]byte("x"))))

	metas, err := Blocks(ctx, fs)
	require.NoError(t, err)
	require.Len(t, metas, 1)
	got := metas[0]
	assert.Equal(t, id, got.ULID)
	assert.Equal(t, map[string]string{"cluster": "c1"}, got.Thanos.Labels)
	assert.Equal(t, int64(0), got.Thanos.Downsample.Resolution)
	assert.Equal(t, []string{"000001"}, got.Thanos.SegmentFiles)
	assert.Equal(t, uint64(100), got.Stats.NumSamples)

	dst := t.TempDir()
	require.NoError(t, Download(ctx, fs, id, dst, nil))
	b, err := tsdb.OpenBlock(promslog.NewNopLogger(), filepath.Join(dst, id.String()), nil, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(100), b.Meta().Stats.NumSamples)
	require.NoError(t, b.Close())
}

func TestReadMetaRejectsVersions(t *testing.T) {
	_, err := ReadMeta(strings.NewReader(`{"version":2}`))
	require.ErrorContains(t, err, "unexpected version 2")
	_, err = ReadMeta(strings.NewReader(`{"version":1,"thanos":{"version":3}}`))
	require.ErrorContains(t, err, "thanos section version 3")
	_, err = ReadMeta(strings.NewReader(`{`))
	require.ErrorContains(t, err, "decode meta.json")
	m, err := ReadMeta(strings.NewReader(`{"version":1}`))
	require.NoError(t, err)
	assert.NotNil(t, m.Thanos.Labels)
}
