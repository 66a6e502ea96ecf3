package projector

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/internal/vfs"
	"github.com/possumstore/possum/storedir"
)

// CheckpointVersion is the format version of the checkpoint file.
const CheckpointVersion = 1

// Checkpoint records how far the projection is durable. It is one JSON
// object, written atomically (temp file, fsync, rename, fsync directory)
// after a sync of the file system, so everything it covers is on disk.
type Checkpoint struct {
	Version int `json:"version"`
	// Position: every event at or below it has its event file and its
	// entries in the index files.
	Position uint64 `json:"position"`
	// TagEntries is the number of positions at or below Position in all tag
	// index files together: a truncated or deleted tag file shows as a
	// shortfall.
	TagEntries int `json:"tag_entries"`
	// EventsMTime is the modification time (Unix ns) of events/ when the
	// checkpoint was written. If it is unchanged at the next Open, no file was
	// added to or removed from events/ since, and Open need not list it.
	EventsMTime int64 `json:"events_mtime"`
	// IDs: an event at or below Position may carry an ID. An Open that
	// builds the index from the index files (which hold no IDs) then reads
	// the IDs from the WAL. Absent when no event carries one.
	IDs bool `json:"ids,omitempty"`
}

// ReadCheckpoint reads the checkpoint of the store in dir. A missing file is
// (zero, nil); an unreadable one is (zero, error): the caller starts over.
func ReadCheckpoint(dir string) (Checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(dir, storedir.CheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("projector: checkpoint: %w", err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("projector: checkpoint damaged: %w", err)
	}
	if cp.Version != CheckpointVersion || cp.TagEntries < 0 {
		return Checkpoint{}, fmt.Errorf("projector: checkpoint damaged: version %d, tag entries %d", cp.Version, cp.TagEntries)
	}
	return cp, nil
}

// eventsMTime reads the modification time the checkpoint records.
func eventsMTime(dir string) int64 {
	st, err := os.Stat(filepath.Join(dir, storedir.EventsDir))
	if err != nil {
		return 0
	}
	return st.ModTime().UnixNano()
}

// WriteCheckpoint syncs the file system holding the store directory dir, so
// that every projected file is durable, then writes cp atomically (temp file,
// fsync, rename, fsync of dir), every change through fs. It sets cp's Version
// and EventsMTime.
func WriteCheckpoint(fs vfs.FS, dir string, cp Checkpoint) error {
	if err := fs.SyncFS(dir); err != nil {
		return fmt.Errorf("projector: syncfs %s: %w", dir, err)
	}
	cp.Version = CheckpointVersion
	cp.EventsMTime = eventsMTime(dir)
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, storedir.TmpDir, storedir.CheckpointFile)
	if err := vfs.WriteFileDurably(fs, filepath.Join(dir, storedir.CheckpointFile), tmp, append(b, '\n'), 0o640); err != nil {
		return fmt.Errorf("projector: checkpoint: %w", err)
	}
	return nil
}
