package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// eventWriter is what append needs of a store. Today it is the store
// itself, opened by this process; once another process can serve its store
// (possum serve), openWriter may return a client of that process instead.
type eventWriter interface {
	Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error)
	Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error]
	Head() uint64
	Close() error
}

var _ eventWriter = (*store.Store)(nil)

// openWriter opens the store in dir for appending, creating it when dir
// holds none. A store another process has open is refused with a message
// that names the process when it can be known.
func openWriter(dir string) (eventWriter, error) {
	return openStore(dir)
}

// openStore opens the store in dir as its writer, explaining ErrLocked.
func openStore(dir string) (*store.Store, error) {
	s, err := store.Open(dir, nil)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("%s is open in %s; nothing was written (a store has one writer: append through that process, or once it has closed the store)",
			dir, writerOf(dir).process())
	}
	return s, err
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
	if st, err := os.Stat(filepath.Join(dir, "wal")); err != nil || !st.IsDir() {
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
