package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

// eventWriter is what append needs of a store: the store itself, opened by
// this process, or a client of the process that holds it open and serves
// it (possum serve, or server.ServeSocket in an application).
type eventWriter interface {
	store.EventStore
	io.Closer
}

var (
	_ eventWriter = (*store.Store)(nil)
	_ eventWriter = (*client.Client)(nil)
)

// openWriter opens the store in dir for appending, creating it when dir
// holds none. When another process has it open and serves it on its unix
// socket, it appends through that process; a store another process holds
// without serving it is refused with a message that names the process when
// it can be known.
func openWriter(dir string) (eventWriter, error) {
	s, err := store.Open(dir, nil)
	if !errors.Is(err, store.ErrLocked) {
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	if c, cerr := client.Dial(dir); cerr == nil {
		return c, nil
	}
	return nil, lockedError(dir)
}

// openStore opens the store in dir as its writer, explaining ErrLocked.
func openStore(dir string) (*store.Store, error) {
	s, err := store.Open(dir, nil)
	if errors.Is(err, store.ErrLocked) {
		return nil, lockedError(dir)
	}
	return s, err
}

func lockedError(dir string) error {
	return fmt.Errorf("%s is open in %s; nothing was written (a store has one writer: serve it from that process, with possum serve or server.ServeSocket, and append goes through it; or wait until it has closed the store)",
		dir, writerOf(dir).process())
}

// holder is a process holding the lock of a store: a writer or a repair
// (exclusive), or a verify (shared).
type holder struct {
	pid       int
	exclusive bool
}

// checkStore says why dir cannot be read as a store: it does not exist, or
// it is not a store.
func checkStore(dir string) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no store at %s: %w", dir, err)
	}
	if st, err := os.Stat(filepath.Join(dir, storedir.WALDir)); err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a possum store (no wal/ directory)", dir)
	}
	return nil
}

// followStore follows the store in dir for a command that reads it: a
// store.Follower, which never locks nor changes the store, so it reads a
// store whether or not another process writes it.
func followStore(dir string) (*store.Follower, error) {
	if err := checkStore(dir); err != nil {
		return nil, err
	}
	return store.Follow(dir, nil)
}
