package bucket

import (
	"context"
	"errors"
	"fmt"

	"github.com/minio/minio-go/v7"
	"github.com/thanos-io/objstore"
)

// s3CredentialCodes are the S3 error codes of a request whose credentials the server refused:
// an unknown access key, a wrong secret key (the signature does not match), an expired or bad
// session token, or a key without permission on the bucket. Retrying does not help; the
// configuration or the key's policy has to change.
var s3CredentialCodes = map[string]bool{
	"InvalidAccessKeyId":    true,
	"SignatureDoesNotMatch": true,
	"AccessDenied":          true,
	"InvalidToken":          true,
	"ExpiredToken":          true,
	"InvalidSecurity":       true,
	"AllAccessDisabled":     true,
}

// ErrCredentials marks an error as the bucket refusing the configured credentials.
var ErrCredentials = errors.New("the bucket refused the credentials")

// ErrNoSuchBucket marks an error as the configured bucket not existing.
var ErrNoSuchBucket = errors.New("the bucket does not exist")

// Explain turns an object-storage error that no retry can fix into one that says what to change
// in the bucket configuration: refused credentials (errors.Is ErrCredentials) and a missing
// bucket (ErrNoSuchBucket). Other errors (an unreachable endpoint, a 5xx) are returned as they
// are. It never quotes a secret: S3 answers name the access key at most.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return err
	}
	switch {
	case s3CredentialCodes[resp.Code]:
		return fmt.Errorf("%w (S3 %s, HTTP %d): check access_key and secret_key (or the key's permissions on the bucket) in the bucket config: %w",
			ErrCredentials, resp.Code, resp.StatusCode, err)
	case resp.Code == "NoSuchBucket":
		return fmt.Errorf("%w (S3 NoSuchBucket: %q): create it, or fix bucket in the bucket config: %w", ErrNoSuchBucket, resp.BucketName, err)
	}
	return err
}

// errStop ends Check's listing after its first entry.
var errStop = errors.New("stop")

// Check lists the top of the bucket (one request for S3) and returns Explain's error if that
// fails: what a reader or writer is about to meet on its first real request.
func Check(ctx context.Context, bkt objstore.BucketReader) error {
	err := bkt.Iter(ctx, "", func(string) error { return errStop })
	if err == nil || errors.Is(err, errStop) {
		return nil
	}
	return Explain(fmt.Errorf("list the bucket: %w", err))
}
