package harness

import (
	"io/fs"
	"path/filepath"
)

func walkFiles(dir string, fn func(size int64)) {
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			fn(info.Size())
		}
		return nil
	})
}
