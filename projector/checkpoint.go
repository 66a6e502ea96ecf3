package projector

import (
	"fmt"
	"path/filepath"

	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

// WriteCheckpoint syncs the file system holding the store directory dir, so
// that every projected file is durable, then writes cp atomically (temp file,
// fsync, rename, fsync of dir), every change through fs. It sets cp's Version
// and EventsMTime.
func WriteCheckpoint(fs vfs.FS, dir string, cp storedir.Checkpoint) error {
	if err := fs.SyncFS(dir); err != nil {
		return fmt.Errorf("projector: syncfs %s: %w", dir, err)
	}
	tmp := filepath.Join(dir, storedir.TmpDir, storedir.CheckpointFile)
	if err := vfs.WriteFileDurably(fs, filepath.Join(dir, storedir.CheckpointFile), tmp, storedir.EncodeCheckpoint(dir, cp), 0o640); err != nil {
		return fmt.Errorf("projector: checkpoint: %w", err)
	}
	return nil
}
