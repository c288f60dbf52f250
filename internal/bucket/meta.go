package bucket

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/prometheus/prometheus/tsdb"
)

// File names inside a block directory.
const (
	MetaFilename  = "meta.json"
	IndexFilename = "index"
	ChunksDirname = "chunks"
)

// SourceSidecar is the thanos.source of blocks edgetel ships: like Thanos' sidecar it uploads
// level-1 blocks cut by a local TSDB.
const SourceSidecar = "sidecar"

// Versions of meta.json and of its thanos section that Thanos reads.
const (
	TSDBVersion1   = 1
	ThanosVersion1 = 1
)

// Meta is a block's meta.json as Thanos writes it: Prometheus' block meta plus a thanos section
// (thanos-io/thanos pkg/block/metadata).
type Meta struct {
	tsdb.BlockMeta
	Thanos Thanos `json:"thanos"`
}

// Thanos is the thanos section of meta.json.
type Thanos struct {
	Version int `json:"version,omitempty"`
	// Labels are the external labels: the identity of the stream the block belongs to.
	Labels     map[string]string `json:"labels"`
	Downsample Downsample        `json:"downsample"`
	Source     string            `json:"source"`
	// SegmentFiles are the chunk segment file names, sorted.
	SegmentFiles []string `json:"segment_files,omitempty"`
	// Files are all files of the block with their sizes, sorted by path.
	Files []File `json:"files,omitempty"`
}

// Downsample holds the resolution in milliseconds; 0 is raw data.
type Downsample struct {
	Resolution int64 `json:"resolution"`
}

// File is one file of a block, relative to the block directory.
type File struct {
	RelPath   string `json:"rel_path"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
}

// ReadMeta decodes meta.json and checks its versions as Thanos does.
func ReadMeta(r io.Reader) (*Meta, error) {
	var m Meta
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode meta.json: %w", err)
	}
	if m.Version != TSDBVersion1 {
		return nil, fmt.Errorf("meta.json: unexpected version %d", m.Version)
	}
	if v := m.Thanos.Version; v != 0 && v != ThanosVersion1 {
		return nil, fmt.Errorf("meta.json: unexpected thanos section version %d", v)
	}
	if m.Thanos.Labels == nil {
		m.Thanos.Labels = map[string]string{}
	}
	return &m, nil
}

// ReadMetaFromDir reads <dir>/meta.json.
func ReadMetaFromDir(dir string) (*Meta, error) {
	f, err := os.Open(filepath.Join(dir, MetaFilename))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadMeta(f)
}

// Write encodes the meta as indented JSON.
func (m *Meta) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "\t")
	return enc.Encode(m)
}

// WriteToDir replaces <dir>/meta.json atomically.
func (m *Meta) WriteToDir(dir string) error {
	path := filepath.Join(dir, MetaFilename)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := m.Write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ValidateForUpload checks what Thanos' block.Upload checks before it ships a block.
func (m *Meta) ValidateForUpload() error {
	if len(m.Thanos.Labels) == 0 {
		return errors.New("empty external labels are not allowed for Thanos blocks")
	}
	if m.Version != TSDBVersion1 {
		return fmt.Errorf("meta.json version %d, want %d", m.Version, TSDBVersion1)
	}
	if m.MinTime >= m.MaxTime {
		return fmt.Errorf("block %s: minTime %d not before maxTime %d", m.ULID, m.MinTime, m.MaxTime)
	}
	return nil
}
