package projector

import (
	"fmt"
	"path/filepath"
)

// Names inside a store directory.
const (
	EventsDir      = "events"
	IndexDir       = "index"
	TmpDir         = "tmp"
	CheckpointFile = "checkpoint"
	// SnapshotFile, under index/, is the whole index as a clean Close left it.
	SnapshotFile = "snapshot"
	// eventNameDigits: event files are named by their position zero-padded
	// to 20 digits (every uint64 fits), so names sort in position order.
	eventNameDigits = 20
	eventExt        = ".json"
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

// EventPath returns the path of the event file of pos in store directory dir.
func EventPath(dir string, pos uint64) string {
	return filepath.Join(dir, EventsDir, EventFileName(pos))
}
