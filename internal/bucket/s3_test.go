package bucket

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/thanos-io/objstore"

	"github.com/edgetel/edgetel/internal/testing/s3test"
)

func s3Bucket(t *testing.T, srv *s3test.Server, extra map[string]any, access, secret string) objstore.Bucket {
	t.Helper()
	conf := srv.Config(access, secret)
	for k, v := range extra {
		conf[k] = v
	}
	bkt, err := New(context.Background(), &Config{Type: objstore.S3, Config: conf}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { bkt.Close() })
	return bkt
}

// Through objstore's S3 provider against the real S3 server: an object above part_size goes up
// in parts (the server's multipart ETag says how many) and reads back byte for byte, and a prefix
// keeps its objects under it.
func TestS3MultipartUploadReadsBack(t *testing.T) {
	srv := s3test.Start(t, "edgetel")
	ctx := context.Background()
	const partSize = 5 << 20 // S3's smallest part
	bkt := s3Bucket(t, srv, map[string]any{"part_size": partSize}, s3test.AccessKey, s3test.SecretKey)
	require.NoError(t, Check(ctx, bkt))

	data := make([]byte, 2*partSize+12345)
	_, _ = rand.Read(data)
	file := filepath.Join(t.TempDir(), "chunk")
	require.NoError(t, os.WriteFile(file, data, 0o600))
	require.NoError(t, objstore.UploadFile(ctx, GoKitLogger(nil), bkt, file, "block/chunks/000001"))

	rc, err := bkt.Get(ctx, "block/chunks/000001")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, got), "the object reads back as uploaded (%d bytes, got %d)", len(data), len(got))
	assert.Equal(t, "3", srv.Parts(t, "block/chunks/000001"), "uploaded in three parts")

	// The posix backend stores the object as a file under the bucket's directory.
	onDisk, err := os.ReadFile(filepath.Join(srv.Root, "edgetel", "block", "chunks", "000001"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, onDisk))
}

// Wrong credentials, a wrong secret and a missing bucket each get an error that names what to fix
// and never quotes the secret.
func TestS3RefusalsAreExplained(t *testing.T) {
	srv := s3test.Start(t, "edgetel")
	ctx := context.Background()
	for name, tc := range map[string]struct {
		access, secret, bucket string
		is                     error
		want                   string
	}{
		"unknown access key": {"NOSUCHKEY", s3test.SecretKey, "edgetel", ErrCredentials, "InvalidAccessKeyId"},
		"wrong secret key":   {s3test.AccessKey, "not-the-secret", "edgetel", ErrCredentials, "SignatureDoesNotMatch"},
		"no such bucket":     {s3test.AccessKey, s3test.SecretKey, "nonexistent", ErrNoSuchBucket, `"nonexistent"`},
	} {
		t.Run(name, func(t *testing.T) {
			bkt := s3Bucket(t, srv, map[string]any{"bucket": tc.bucket}, tc.access, tc.secret)
			err := Check(ctx, bkt)
			require.ErrorIs(t, err, tc.is)
			assert.ErrorContains(t, err, tc.want)
			assert.NotContains(t, err.Error(), tc.secret)
			t.Log(err)

			// Every operation explains the same way, a HEAD (no error body) included; a HEAD
			// cannot tell a missing bucket from a missing object.
			if tc.is == ErrCredentials {
				_, err = bkt.Exists(ctx, "x/meta.json")
				assert.ErrorIs(t, Explain(err), tc.is)
			}
			err = bkt.Upload(ctx, "x/meta.json", bytes.NewReader([]byte("{}")))
			assert.ErrorIs(t, Explain(err), tc.is)
		})
	}
}
