// Package vfs is the file-system seam under a store's projection: every call
// that changes a projected file (event files, index files, the snapshot, the
// checkpoint) or makes one durable goes through an FS value, so that tests
// can record those calls, fail them, or roll them back to what a power cut
// could leave. Reads stay on the os package: they change nothing and need no
// durability.
//
// The WAL's appends are not behind this seam (the log knows its own sync
// points, wal.Options.SyncFile); a WAL repair's changes are, so that tests
// fail them midway.
//
// It is internal/sys, the lowest layer: it imports nothing of possum, and
// every other package may use it.
package vfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/internal/sys/platform"
)

// FS changes files and makes them durable. Implementations are safe for
// concurrent use.
type FS interface {
	// OpenFile opens name for writing, with os.OpenFile's flags and
	// permission.
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// Rename replaces newpath with oldpath, atomically as os.Rename does.
	// It is durable only once the directories are synced.
	Rename(oldpath, newpath string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// RemoveAll removes path and anything under it; a missing path is fine.
	RemoveAll(path string) error
	// Truncate changes the size of the file name.
	Truncate(name string, size int64) error
	// MkdirAll creates a directory and its parents, as os.MkdirAll.
	MkdirAll(path string, perm os.FileMode) error
	// SyncDir makes the entries of the directory dir (creations, renames,
	// removals) durable.
	SyncDir(dir string) error
	// SyncFS makes everything written to the file system holding path
	// durable: contents and directory entries of every file.
	SyncFS(path string) error
}

// File is a file opened for writing.
type File interface {
	io.Writer
	// Sync makes the file's content durable (fsync). Its name in its
	// directory is durable only once the directory is synced.
	Sync() error
	Close() error
	// Stat describes the file (the projector reads its size).
	Stat() (os.FileInfo, error)
}

// OS is the FS of the operating system.
var OS FS = osFS{}

type osFS struct{}

var _ FS = osFS{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err // a nil *os.File must not become a non-nil File
	}
	return f, nil
}

func (osFS) Rename(oldpath, newpath string) error         { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) RemoveAll(path string) error                  { return os.RemoveAll(path) }
func (osFS) Truncate(name string, size int64) error       { return os.Truncate(name, size) }
func (osFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// SyncDir and SyncFS are the platform's: internal/platform says what each
// operating system guarantees.
func (osFS) SyncDir(dir string) error { return platform.SyncDir(dir) }
func (osFS) SyncFS(path string) error { return platform.SyncFS(path) }

// WriteFile writes data to name through fs, creating or truncating it, as
// os.WriteFile does. It does not sync.
func WriteFile(fs FS, name string, data []byte, perm os.FileMode) error {
	f, err := fs.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteFileDurably replaces name with data so that a crash leaves the old
// content or the new, whole: written to tmp, fsync'd, renamed over name, and
// name's directory fsync'd. tmp must be on the same file system as name.
func WriteFileDurably(fs FS, name, tmp string, data []byte, perm os.FileMode) error {
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	if err := fs.SyncDir(filepath.Dir(name)); err != nil {
		return fmt.Errorf("fsync dir %s: %w", filepath.Dir(name), err)
	}
	return nil
}
