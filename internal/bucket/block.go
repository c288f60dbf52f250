package bucket

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"
)

// FillFiles sets SegmentFiles and Files from the block directory's chunks and index.
func (m *Meta) FillFiles(blockDir string) error {
	m.Thanos.SegmentFiles, m.Thanos.Files = nil, nil
	segs, err := os.ReadDir(filepath.Join(blockDir, ChunksDirname))
	if err != nil {
		return fmt.Errorf("list chunks of %s: %w", blockDir, err)
	}
	for _, s := range segs {
		info, err := s.Info()
		if err != nil {
			return err
		}
		m.Thanos.SegmentFiles = append(m.Thanos.SegmentFiles, s.Name())
		m.Thanos.Files = append(m.Thanos.Files, File{RelPath: path.Join(ChunksDirname, s.Name()), SizeBytes: info.Size()})
	}
	info, err := os.Stat(filepath.Join(blockDir, IndexFilename))
	if err != nil {
		return fmt.Errorf("stat index of %s: %w", blockDir, err)
	}
	m.Thanos.Files = append(m.Thanos.Files, File{RelPath: IndexFilename, SizeBytes: info.Size()}, File{RelPath: MetaFilename})
	slices.Sort(m.Thanos.SegmentFiles)
	slices.SortFunc(m.Thanos.Files, func(a, b File) int { return strings.Compare(a.RelPath, b.RelPath) })
	return nil
}

// Upload ships a block directory to <ULID>/ in the bucket the way Thanos' shipper does: chunks,
// then index, then meta (written from m, not from the local meta.json) last, so readers never see
// a block whose meta.json exists but whose data does not. Tombstones are not uploaded.
func Upload(ctx context.Context, bkt objstore.Bucket, blockDir string, m *Meta, logger *slog.Logger) error {
	if err := m.ValidateForUpload(); err != nil {
		return err
	}
	id := m.ULID.String()
	kl := GoKitLogger(logger)
	if err := objstore.UploadDir(ctx, kl, bkt, filepath.Join(blockDir, ChunksDirname), path.Join(id, ChunksDirname)); err != nil {
		return fmt.Errorf("upload chunks of %s: %w", id, err)
	}
	if err := objstore.UploadFile(ctx, kl, bkt, filepath.Join(blockDir, IndexFilename), path.Join(id, IndexFilename)); err != nil {
		return fmt.Errorf("upload index of %s: %w", id, err)
	}
	var buf strings.Builder
	if err := m.Write(&buf); err != nil {
		return err
	}
	if err := bkt.Upload(ctx, path.Join(id, MetaFilename), strings.NewReader(buf.String())); err != nil {
		return fmt.Errorf("upload meta.json of %s: %w", id, err)
	}
	return nil
}

// Blocks returns the meta of every complete block in the bucket (one with a meta.json), sorted by
// minTime. Directories without meta.json are partial uploads and are skipped.
func Blocks(ctx context.Context, bkt objstore.BucketReader) ([]*Meta, error) {
	var metas []*Meta
	err := bkt.Iter(ctx, "", func(name string) error {
		id, err := ulid.Parse(strings.TrimSuffix(name, "/"))
		if err != nil {
			return nil // not a block directory
		}
		m, err := GetMeta(ctx, bkt, id)
		if bkt.IsObjNotFoundErr(errors.Unwrap(err)) || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		metas = append(metas, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blocks: %w", err)
	}
	slices.SortFunc(metas, func(a, b *Meta) int {
		if a.MinTime != b.MinTime {
			return int(min(max(a.MinTime-b.MinTime, -1), 1))
		}
		return a.ULID.Compare(b.ULID)
	})
	return metas, nil
}

// GetMeta reads <id>/meta.json from the bucket. A missing meta.json is an error that wraps
// the bucket's not-found error (check with bkt.IsObjNotFoundErr(errors.Unwrap(err))).
func GetMeta(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID) (*Meta, error) {
	rc, err := bkt.Get(ctx, path.Join(id.String(), MetaFilename))
	if err != nil {
		return nil, fmt.Errorf("get meta.json of %s: %w", id, err)
	}
	defer rc.Close()
	m, err := ReadMeta(rc)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", id, err)
	}
	return m, nil
}

// Download copies block <id> (chunks, index, meta.json) into <dstDir>/<id>, a directory that
// Prometheus' tsdb and promtool open as a block.
func Download(ctx context.Context, bkt objstore.BucketReader, id ulid.ULID, dstDir string, logger *slog.Logger) error {
	dst := filepath.Join(dstDir, id.String())
	kl := GoKitLogger(logger)
	if err := objstore.DownloadDir(ctx, kl, bkt, id.String(), path.Join(id.String(), ChunksDirname), filepath.Join(dst, ChunksDirname)); err != nil {
		return fmt.Errorf("download chunks of %s: %w", id, err)
	}
	for _, f := range []string{IndexFilename, MetaFilename} {
		if err := objstore.DownloadFile(ctx, kl, bkt, path.Join(id.String(), f), filepath.Join(dst, f)); err != nil {
			return fmt.Errorf("download %s of %s: %w", f, id, err)
		}
	}
	return nil
}
