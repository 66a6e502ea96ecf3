package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
)

// BackupReport says what a backup copied.
type BackupReport struct {
	// Head is the last position of the copy: it holds every event up to
	// it, exactly, and nothing after.
	Head uint64
	// Records and Segments are the WAL records and segment files of the
	// copy; Bytes, what this backup wrote (0 when nothing was new).
	Records, Segments int
	Bytes             int64
}

// Backup copies the store into dir: a consistent copy of every event
// acknowledged when Backup is called, while appends go on (the WAL is
// append-only: Backup copies it up to an acknowledged record, fsyncs,
// done). dir becomes a store of its own, holding the WAL, the store's
// format and projection choice, and a checkpoint at position 0: opening it
// writes the event and index files in the background, and `possum verify`
// reports them pending. A dir that holds an earlier backup of this store is
// brought up to date: only what is new is copied. A dir that holds anything
// else (another store, a backup that was opened and appended to) is
// refused, nothing changed. Backup takes dir's writer lock while it runs.
func (s *Store) Backup(ctx context.Context, dir string) (BackupReport, error) {
	if s.closed() {
		return BackupReport{}, ErrClosed
	}
	return backup(ctx, s.dir, s.wal, dir)
}

// Backup is Store.Backup for the store a follower follows: what the writer
// acknowledged, as far as the follower knows when Backup is called.
func (f *Follower) Backup(ctx context.Context, dir string) (BackupReport, error) {
	if err := f.refresh(); err != nil {
		return BackupReport{}, err
	}
	return backup(ctx, f.dir, f.wal, dir)
}

func backup(ctx context.Context, src string, log *wal.Log, dst string) (BackupReport, error) {
	fail := func(err error) (BackupReport, error) {
		if errors.Is(err, wal.ErrClosed) {
			err = ErrClosed
		}
		return BackupReport{}, fmt.Errorf("store: backup of %s into %s: %w", src, dst, err)
	}
	if same, err := sameDir(src, dst); err != nil || same {
		if err == nil {
			err = errors.New("the backup must go to another directory")
		}
		return fail(err)
	}
	format, err := os.ReadFile(filepath.Join(src, storedir.FormatFile))
	if err != nil {
		return fail(err)
	}
	// dst is new, empty, or a store (an earlier backup): anything else
	// is no place for one.
	fresh := false
	if ents, err := os.ReadDir(dst); errors.Is(err, os.ErrNotExist) || err == nil && len(ents) == 0 {
		fresh = true
	} else if err != nil {
		return fail(err)
	} else if _, err := os.Stat(filepath.Join(dst, storedir.FormatFile)); err != nil {
		return fail(fmt.Errorf("%s holds files but no store (no %s file): back up into a new or empty directory, or an earlier backup", dst, storedir.FormatFile))
	}
	if err := os.MkdirAll(filepath.Join(dst, storedir.TmpDir), 0o750); err != nil {
		return fail(err)
	}
	lock, err := storedir.Lock(dst, true)
	if err != nil {
		return fail(err)
	}
	defer storedir.Unlock(lock)
	write := func(name string, b []byte) error {
		return vfs.WriteFileDurably(vfs.OS, filepath.Join(dst, name), filepath.Join(dst, storedir.TmpDir, name), b, 0o640)
	}
	if fresh {
		if err := write(storedir.FormatFile, format); err != nil {
			return fail(err)
		}
	}
	// The WAL: checked to be a copy of this one, then brought up to date.
	st, err := log.CopyTo(ctx, filepath.Join(dst, storedir.WALDir))
	if err != nil {
		return fail(err)
	}
	if !fresh {
		if err := write(storedir.FormatFile, format); err != nil { // an upgraded store upgrades its copy
			return fail(err)
		}
	}
	// The projection choice, as the store has it.
	choice, err := os.ReadFile(filepath.Join(src, storedir.ProjectionFile))
	switch {
	case err == nil:
		err = write(storedir.ProjectionFile, choice)
	case errors.Is(err, os.ErrNotExist):
		err = os.Remove(filepath.Join(dst, storedir.ProjectionFile))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		return fail(err)
	}
	if _, err := os.Stat(filepath.Join(dst, storedir.CheckpointFile)); errors.Is(err, os.ErrNotExist) {
		// Nothing projected yet: every position is pending.
		if err := projector.WriteCheckpoint(vfs.OS, dst, storedir.Checkpoint{}); err != nil {
			return fail(err)
		}
	}
	return BackupReport{Head: st.Last, Records: st.Records, Segments: st.Segments, Bytes: st.Bytes}, nil
}

// sameDir reports whether a and b name one directory (b need not exist).
func sameDir(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
