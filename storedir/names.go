package storedir

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// The names inside a store directory (docs/FORMAT.md).
const (
	// FormatFile holds the store's format version: "possum N\n".
	FormatFile = "FORMAT"
	// LockFile is the writer's lock (see Lock).
	LockFile = "LOCK"
	// WALDir holds the write-ahead log: the source of truth.
	WALDir = "wal"
	// EventsDir holds one JSON file per event (EventFileName).
	EventsDir = "events"
	// IndexDir holds the index files, under TypesDir and TagsDir
	// (IndexFileName), and SnapshotFile.
	IndexDir = "index"
	// TypesDir and TagsDir, under IndexDir, hold one index file per type
	// and per tag.
	TypesDir = "types"
	TagsDir  = "tags"
	// SnapshotFile, under IndexDir, is the whole index as a clean close
	// left it.
	SnapshotFile = "snapshot"
	// CheckpointFile says how far the event and index files are durable.
	CheckpointFile = "checkpoint"
	// ProjectionFile records which files the store materializes, when
	// not all of them.
	ProjectionFile = "PROJECTION"
	// CursorsDir holds the named cursors of consumers.
	CursorsDir = "cursors"
	// TmpDir is the writer's scratch space.
	TmpDir = "tmp"
	// SocketFile is the unix socket of the process serving the store.
	SocketFile = "possum.sock"
	// LostEventsDir holds, in one directory per repair (named by
	// BrokenSuffix), the event files a repair found at positions it lost
	// (their WAL bytes failed their checksums or were gone, so nothing
	// verifies them), moved aside rather than overwritten by the positions'
	// markers: for an operator to look at, never read by possum.
	LostEventsDir = "lost"
)

// BrokenSuffix is what a repair appends to the name of a file it keeps
// aside: "broken." and the time, UTC, to the nanosecond.
func BrokenSuffix() string {
	return "broken." + strings.ReplaceAll(time.Now().UTC().Format("20060102T150405.000000000"), ".", "")
}

const (
	// eventNameDigits: event files are named by their position zero-padded
	// to 20 digits (every uint64 fits), so names sort in position order.
	eventNameDigits = 20
	eventExt        = ".json"
	// IndexFileExt ends every index file name.
	IndexFileExt = ".idx"
	// maxEscapedIndexName: escaped names up to this length are used as
	// they are; longer ones are hashed (file names take 255 bytes).
	maxEscapedIndexName = 200
)

// EventFileName returns the name of the event file of position pos.
func EventFileName(pos uint64) string { return fmt.Sprintf("%020d%s", pos, eventExt) }

// ParseEventFileName returns the position an event file name stands for.
func ParseEventFileName(name string) (uint64, bool) {
	if len(name) != eventNameDigits+len(eventExt) || name[eventNameDigits:] != eventExt {
		return 0, false
	}
	var pos uint64
	for _, c := range name[:eventNameDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
		pos = pos*10 + uint64(c-'0')
	}
	return pos, pos > 0
}

// EventPath returns the path of the event file of pos in the store in dir.
func EventPath(dir string, pos uint64) string {
	return filepath.Join(dir, EventsDir, EventFileName(pos))
}

// IndexFileName returns the file name of the index file of a type or tag.
//
// Bytes a-z, 0-9 and '-' stand for themselves; every other byte is written
// '_' followed by two lowercase hex digits. The mapping is injective, safe on
// case-insensitive file systems, and never yields "." or "..": "a/b" becomes
// "a_2fb", "a_b" becomes "a_5fb", "A" becomes "_41". When the escaped name
// would exceed 200 bytes, the name is "~" followed by the hex SHA-256 of the
// type or tag; the file's header names its type or tag, which tells such
// files apart.
func IndexFileName(name string) string {
	const hexDigits = "0123456789abcdef"
	b := make([]byte, 0, len(name)+8)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' {
			b = append(b, c)
		} else {
			b = append(b, '_', hexDigits[c>>4], hexDigits[c&15])
		}
		if len(b) > maxEscapedIndexName {
			sum := sha256.Sum256([]byte(name))
			return "~" + hex.EncodeToString(sum[:]) + IndexFileExt
		}
	}
	return string(b) + IndexFileExt
}

// SocketPath returns the path of the unix socket of the store in dir: a
// local process finds the server of a store from the store's path alone.
func SocketPath(dir string) string { return filepath.Join(dir, SocketFile) }

// MaxSocketPath is the longest socket path this platform's unix sockets
// take, in bytes: sun_path holds 108 bytes on Linux and Windows, 104 on
// macOS and the BSDs, the terminating NUL included.
func MaxSocketPath() int {
	switch runtime.GOOS {
	case "linux", "windows", "android":
		return 107
	default:
		return 103
	}
}

// CheckSocketPath returns an error naming path and the limit when path is
// too long for a unix socket, nil otherwise.
func CheckSocketPath(path string) error {
	if n, limit := len(path), MaxSocketPath(); n > limit {
		return fmt.Errorf("storedir: socket path %s is %d bytes, over the %d-byte limit of unix sockets on %s: serve the store from a shorter path, or over TCP", path, n, limit, runtime.GOOS)
	}
	return nil
}
