package store

import (
	"os"
	"time"

	"github.com/possumstore/possum/internal/sys/vfs"
)

// OpenFS is Open with fs under the projection: for tests that record, fail
// or roll back the projector's file system calls.
func OpenFS(dir string, opts *Options, fs vfs.FS) (*Store, error) {
	return open(dir, opts, seams{fs: fs})
}

// OpenRecordLimit is Open with an append's WAL record bounded at limit
// bytes instead of wal.MaxRecordSize, for tests of the bound.
func OpenRecordLimit(dir string, opts *Options, limit int) (*Store, error) {
	return open(dir, opts, seams{maxRecord: limit})
}

// OpenWALSync is Open with sync as the function that fsyncs the store's
// WAL segments, for tests that block or fail it.
func OpenWALSync(dir string, opts *Options, sync func(*os.File) error) (*Store, error) {
	return open(dir, opts, seams{walSync: sync})
}

// ProjectorStopping returns a channel closed once Close has asked the
// projector to stop.
func ProjectorStopping(s *Store) <-chan struct{} { return s.proj.Stopping() }

// OnGroupWritten makes the writer call f with the last position of each
// group it writes to the WAL (before its fsync). Set it before the first
// Append, and only once.
func OnGroupWritten(s *Store, f func(last uint64)) { s.onWritten = f }

// SetProjectorClock makes the projector measure its rate with now: set it
// before the first Append, for tests that give projecting a known duration.
func SetProjectorClock(s *Store, now func() time.Time) { s.proj.SetClock(now) }

// LockFile returns the open file of the store's writer lock.
func LockFile(s *Store) *os.File { return s.lock }
