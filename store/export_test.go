package store

import "github.com/possumstore/possum/internal/vfs"

// OpenFS is Open with fs under the projection: for tests that record, fail
// or roll back the projector's file system calls.
func OpenFS(dir string, opts *Options, fs vfs.FS) (*Store, error) { return open(dir, opts, fs) }

// ProjectorStopping returns a channel closed once Close has asked the
// projector to stop.
func ProjectorStopping(s *Store) <-chan struct{} { return s.proj.Stopping() }
