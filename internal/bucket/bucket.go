// Package bucket opens the object-storage bucket that edgetel writes TSDB blocks to and reads
// them from, and holds the Thanos block metadata shared by the objstore exporter (writer) and
// edgetel-query (reader).
//
// The bucket configuration is Thanos' objstore YAML, so the same file works for Thanos' store
// gateway and compactor:
//
//	type: FILESYSTEM          # or S3, GCS, AZURE
//	config:
//	  directory: /var/lib/edgetel/bucket
//	prefix: ""                # optional: every object name is put under this prefix
//
// Only the FILESYSTEM, S3, GCS and AZURE providers are linked in: objstore's client package would
// link every provider SDK objstore knows.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/azure"
	"github.com/thanos-io/objstore/providers/filesystem"
	"github.com/thanos-io/objstore/providers/gcs"
	"github.com/thanos-io/objstore/providers/s3"
	"gopkg.in/yaml.v2"
)

// Component is the name objstore providers put in their user agents.
const Component = "edgetel"

// DefaultDirName is the bucket directory of the default FILESYSTEM bucket, under a data directory.
const DefaultDirName = "bucket"

// Providers lists the bucket types this build supports.
var Providers = []objstore.ObjProvider{objstore.FILESYSTEM, objstore.S3, objstore.GCS, objstore.AZURE}

// Config is Thanos' bucket configuration (objstore client.BucketConfig).
type Config struct {
	Type   objstore.ObjProvider `yaml:"type"`
	Config any                  `yaml:"config"`
	Prefix string               `yaml:"prefix"`
}

// DefaultYAML is the configuration of a FILESYSTEM bucket in <dataDir>/bucket.
func DefaultYAML(dataDir string) []byte {
	dir, err := filepath.Abs(filepath.Join(dataDir, DefaultDirName))
	if err != nil {
		dir = filepath.Join(dataDir, DefaultDirName)
	}
	out, _ := yaml.Marshal(Config{Type: objstore.FILESYSTEM, Config: map[string]string{"directory": dir}})
	return out
}

// ParseYAML parses and checks a bucket configuration without opening the bucket. Unknown keys
// are errors, as in Thanos.
func ParseYAML(conf []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(conf, &c); err != nil {
		return nil, fmt.Errorf("parse bucket config: %w", err)
	}
	if c.Type == "" {
		return nil, errors.New("bucket config: type is required (one of FILESYSTEM, S3, GCS, AZURE)")
	}
	c.Type = objstore.ObjProvider(strings.ToUpper(string(c.Type)))
	for _, p := range Providers {
		if c.Type == p {
			return &c, nil
		}
	}
	return nil, fmt.Errorf("bucket config: type %q is not supported by edgetel (supported: FILESYSTEM, S3, GCS, AZURE)", c.Type)
}

// NewFromYAML opens the bucket described by Thanos' bucket YAML. The configuration may hold
// secrets: errors never quote it. logger may be nil.
func NewFromYAML(ctx context.Context, conf []byte, logger *slog.Logger) (objstore.Bucket, error) {
	c, err := ParseYAML(conf)
	if err != nil {
		return nil, err
	}
	return New(ctx, c, logger)
}

// New opens the bucket of a parsed configuration. logger may be nil.
func New(ctx context.Context, c *Config, logger *slog.Logger) (objstore.Bucket, error) {
	provider, err := yaml.Marshal(c.Config)
	if err != nil {
		return nil, fmt.Errorf("bucket config: marshal config section: %w", err)
	}
	kl := GoKitLogger(logger)
	var bkt objstore.Bucket
	switch c.Type {
	case objstore.FILESYSTEM:
		bkt, err = filesystem.NewBucketFromConfig(provider)
	case objstore.S3:
		bkt, err = s3.NewBucket(kl, provider, Component, nil)
	case objstore.GCS:
		bkt, err = gcs.NewBucket(ctx, kl, provider, Component, nil)
	case objstore.AZURE:
		bkt, err = azure.NewBucket(kl, provider, Component, nil)
	default:
		return nil, fmt.Errorf("bucket config: type %q is not supported by edgetel", c.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s bucket: %w", c.Type, err)
	}
	return objstore.NewPrefixedBucket(bkt, c.Prefix), nil
}
