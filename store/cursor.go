package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

// A Cursor is a consumer's durable position: the last event it handled, kept
// in one small file so that a consumer that restarts resumes right after it.
//
// The delivery guarantee is at-least-once when the consumer saves the
// cursor after handling an event: a crash between handling and saving
// hands that event over again after the restart, never skips one. For
// effectively-once, make handling idempotent by position (a read model that
// ignores positions at or below the one it last applied), or keep the
// position in the same transaction as the handler's own writes and use the
// cursor only as a hint.
//
// Each Save is durable (written aside, fsync'd, renamed into place, the
// directory fsync'd) and costs a few fsyncs: save every N events or every
// second rather than after each when events come fast.
//
// Opening a cursor only reads: its file, and the directory holding it, are
// written by the first Save (or Lock), so that a follower that never saves
// leaves the store as it was. A cursor is safe for concurrent use; two
// consumers must not share one: Lock makes sure.
type Cursor struct {
	path string
	mu   sync.Mutex
	pos  uint64
	made bool     // the cursor's directory exists
	lock *os.File // held from Lock to Close
}

// Cursor opens the cursor called name in the store's directory
// (cursors/<name>), at position 0 when it was never saved. A name is 1 to
// 128 letters, digits, '-', '_' or '.', not starting with '.'.
func (s *Store) Cursor(name string) (*Cursor, error) { return NamedCursor(s.dir, name) }

// NamedCursor is Store.Cursor for the store in dir, open or not, by this
// process or another (a follower's cursor); the store need not exist yet.
// Like OpenCursor, it creates nothing.
func NamedCursor(dir, name string) (*Cursor, error) {
	if err := checkCursorName(name); err != nil {
		return nil, err
	}
	return OpenCursor(filepath.Join(dir, storedir.CursorsDir, name))
}

func checkCursorName(name string) error {
	ok := len(name) > 0 && len(name) <= 128 && name[0] != '.'
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}
	if !ok {
		return fmt.Errorf("store: cursor name %q: want 1 to 128 letters, digits, '-', '_' or '.', not starting with '.'", name)
	}
	return nil
}

// cursorMagic starts a cursor file:
//
//	possum-cursor 1 <position> <xxhash64 of "possum-cursor 1 <position>", 16 hex digits>\n
const cursorMagic = "possum-cursor 1"

// OpenCursor opens the cursor kept in the file at path, at position 0 when
// the file does not exist: for a consumer of a store it cannot write, a path
// of its own. It only reads; the first Save (or Lock) creates the file's
// directory. A file that is not a whole cursor (torn by a crash, or not a
// cursor) is an error wrapping ErrCorrupt: it is never trusted; remove it to
// start over.
func OpenCursor(path string) (*Cursor, error) {
	c := &Cursor{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("store: cursor %s: %w", path, err)
	}
	pos, ok := parseCursor(string(b))
	if !ok {
		return nil, fmt.Errorf("store: cursor %s: %w: not a whole cursor file (%d bytes); remove it to start over", path, ErrCorrupt, len(b))
	}
	c.pos = pos
	c.made = true
	return c, nil
}

// lockSuffix ends the name of the file beside a cursor's that Lock locks.
const lockSuffix = ".lock"

// Lock takes the cursor for this consumer until Close, and checks that it
// can be saved: it creates the cursor's directory and, beside the cursor's
// file, a lock file (<file>.lock, left in place), and locks that file. A
// cursor another consumer holds, in this process or another, gives an error
// wrapping ErrLocked; one that cannot be saved there (a read-only place, a
// file or a directory in the way) an error saying why. Call it before
// handling any event, so that a consumer that cannot go on stops before it
// starts. The operating system releases the lock of a process that dies
// (flock(2), LockFileEx), so a crashed consumer never keeps the next one
// out. Lock on a locked cursor does nothing.
func (c *Cursor) Lock() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lock != nil {
		return nil
	}
	if fi, err := os.Stat(c.path); err == nil && fi.IsDir() {
		return fmt.Errorf("store: cursor %s cannot be saved: a directory is in its place", c.path)
	}
	if err := c.makeDir(); err != nil {
		return err
	}
	f, err := os.OpenFile(c.path+lockSuffix, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("store: cursor %s cannot be saved: %w", c.path, err)
	}
	if err := platform.Lock(f, true); err != nil {
		f.Close()
		if errors.Is(err, platform.ErrLocked) {
			return cursorLockedError{c.path}
		}
		return fmt.Errorf("store: cursor %s: %w", c.path, err)
	}
	c.lock = f
	return nil
}

// cursorLockedError is ErrLocked for a cursor: its message speaks of the
// cursor, not of a store directory.
type cursorLockedError struct{ path string }

func (e cursorLockedError) Error() string {
	return fmt.Sprintf("store: cursor %s is in use: another consumer holds its lock (%s%s); two consumers must not share a cursor", e.path, e.path, lockSuffix)
}

func (e cursorLockedError) Unwrap() error { return ErrLocked }

// Close releases the cursor's lock, if Lock took it. The cursor can still
// be read and saved.
func (c *Cursor) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lock == nil {
		return nil
	}
	err := platform.Unlock(c.lock)
	c.lock = nil
	if err != nil {
		return fmt.Errorf("store: cursor %s: %w", c.path, err)
	}
	return nil
}

// makeDir creates the directory of the cursor's file, once. c.mu is held.
func (c *Cursor) makeDir() error {
	if c.made {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o750); err != nil {
		return fmt.Errorf("store: cursor %s cannot be saved: %w", c.path, err)
	}
	c.made = true
	return nil
}

func formatCursor(pos uint64) string {
	line := cursorMagic + " " + strconv.FormatUint(pos, 10)
	return fmt.Sprintf("%s %016x\n", line, xxhash.Sum64String(line))
}

func parseCursor(s string) (uint64, bool) {
	body, ok := strings.CutSuffix(s, "\n")
	i := strings.LastIndexByte(body, ' ')
	if !ok || i < 0 {
		return 0, false
	}
	line, sum := body[:i], body[i+1:]
	if fmt.Sprintf("%016x", xxhash.Sum64String(line)) != sum {
		return 0, false
	}
	rest, ok := strings.CutPrefix(line, cursorMagic+" ")
	if !ok {
		return 0, false
	}
	pos, err := strconv.ParseUint(rest, 10, 64)
	return pos, err == nil
}

// Position returns the last position saved (0: none): the position to
// resume after, as Subscribe's after and ReadOptions.From-1 take it.
func (c *Cursor) Position() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos
}

// Path returns the cursor's file.
func (c *Cursor) Path() string { return c.path }

// Save records pos durably: after Save returns, a crash leaves the cursor at
// pos (or at a later position saved since).
func (c *Cursor) Save(pos uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.makeDir(); err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp-%d", c.path, os.Getpid())
	if err := vfs.WriteFileDurably(vfs.OS, c.path, tmp, []byte(formatCursor(pos)), 0o640); err != nil {
		return fmt.Errorf("store: save cursor %s: %w", c.path, err)
	}
	c.pos = pos
	return nil
}
