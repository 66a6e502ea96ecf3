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
	"github.com/possumstore/possum/internal/vfs"
)

// CursorsDir is the directory of a store that holds its named cursors.
const CursorsDir = "cursors"

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
// second rather than after each when events come fast. A cursor is safe for
// concurrent use; two processes must not share one.
type Cursor struct {
	path string
	mu   sync.Mutex
	pos  uint64
}

// Cursor opens the cursor called name in the store's directory
// (cursors/<name>), creating it at position 0. A name is 1 to 128 letters,
// digits, '-', '_' or '.', not starting with '.'.
func (s *Store) Cursor(name string) (*Cursor, error) { return NamedCursor(s.dir, name) }

// NamedCursor is Store.Cursor for the store in dir, open or not, by this
// process or another (a follower's cursor).
func NamedCursor(dir, name string) (*Cursor, error) {
	if err := checkCursorName(name); err != nil {
		return nil, err
	}
	return OpenCursor(filepath.Join(dir, CursorsDir, name))
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

// OpenCursor opens the cursor kept in the file at path (its directory is
// created if needed), at position 0 when the file does not exist: for a
// consumer of a store it cannot write, a path of its own. A file that is not
// a whole cursor (torn by a crash, or not a cursor) is an error wrapping
// ErrCorrupt: it is never trusted; remove it to start over.
func OpenCursor(path string) (*Cursor, error) {
	c := &Cursor{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("store: cursor: %w", err)
		}
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("store: cursor: %w", err)
	}
	pos, ok := parseCursor(string(b))
	if !ok {
		return nil, fmt.Errorf("store: cursor %s: %w: not a whole cursor file (%d bytes); remove it to start over", path, ErrCorrupt, len(b))
	}
	c.pos = pos
	return c, nil
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
	tmp := fmt.Sprintf("%s.tmp-%d", c.path, os.Getpid())
	if err := vfs.WriteFileDurably(vfs.OS, c.path, tmp, []byte(formatCursor(pos)), 0o640); err != nil {
		return fmt.Errorf("store: save cursor %s: %w", c.path, err)
	}
	c.pos = pos
	return nil
}
