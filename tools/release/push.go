package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// push uploads every image of images.json from <dist>/oci/<name> to <prefix>/<name>:<tag> and
// returns the pushed references by digest. Credentials come from the Docker config
// (~/.docker/config.json, as `docker login` or `crane auth login` write it); insecure allows
// plain HTTP, for a registry on loopback.
func push(ctx context.Context, dist, prefix string, insecure bool) ([]string, error) {
	recs, err := readImageRecords(filepath.Join(dist, "images.json"))
	if err != nil {
		return nil, err
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	var refs []string
	for _, r := range recs {
		ref, err := name.NewTag(strings.TrimSuffix(prefix, "/")+"/"+r.Name+":"+r.Tag, opts...)
		if err != nil {
			return nil, err
		}
		idx, err := readLayout(filepath.Join(dist, "oci", r.Name))
		if err != nil {
			return nil, err
		}
		if d, err := idx.Digest(); err != nil || d.String() != r.Digest {
			return nil, fmt.Errorf("%s: layout holds %v, images.json says %s (%v)", r.Name, d, r.Digest, err)
		}
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return nil, fmt.Errorf("push %s: %w", ref, err)
		}
		refs = append(refs, ref.Context().Name()+"@"+r.Digest)
	}
	return refs, nil
}
