package storedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// CheckpointVersion is the format version of the checkpoint file.
const CheckpointVersion = 1

// Checkpoint is the content of the checkpoint file: how far the projection
// (the event and index files) is durable. It is one JSON object and a
// newline, written atomically after a sync of the file system (the
// projector's WriteCheckpoint), so everything it covers is on disk.
type Checkpoint struct {
	Version int `json:"version"`
	// Position: every event at or below it has its event file and its
	// entries in the index files.
	Position uint64 `json:"position"`
	// TagEntries is the number of positions at or below Position in all tag
	// index files together: a truncated or deleted tag file shows as a
	// shortfall.
	TagEntries int `json:"tag_entries"`
	// EventsMTime is the modification time (Unix ns) of events/ when the
	// checkpoint was written. If it is unchanged at the next Open, no file was
	// added to or removed from events/ since, and Open need not list it.
	EventsMTime int64 `json:"events_mtime"`
	// IDs: an event at or below Position may carry an ID. An Open that
	// builds the index from the index files (which hold no IDs) then reads
	// the IDs from the WAL. Absent when no event carries one.
	IDs bool `json:"ids,omitempty"`
}

// ReadCheckpoint reads the checkpoint of the store in dir. A missing file
// is (zero, nil); an unreadable one is (zero, error): the caller starts
// over.
func ReadCheckpoint(dir string) (Checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("storedir: checkpoint: %w", err)
	}
	var cp Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("storedir: checkpoint damaged: %w", err)
	}
	if cp.Version != CheckpointVersion || cp.TagEntries < 0 {
		return Checkpoint{}, fmt.Errorf("storedir: checkpoint damaged: version %d, tag entries %d", cp.Version, cp.TagEntries)
	}
	return cp, nil
}

// EncodeCheckpoint returns the content of a checkpoint file for cp, taking
// its Version and its EventsMTime from the store in dir as it is now.
func EncodeCheckpoint(dir string, cp Checkpoint) []byte {
	cp.Version = CheckpointVersion
	cp.EventsMTime = EventsMTime(dir)
	b, _ := json.Marshal(cp) // numbers and a bool: always marshals
	return append(b, '\n')
}

// EventsMTime returns the modification time of the events/ directory of
// the store in dir, Unix ns, 0 when it cannot be read: what a checkpoint
// records.
func EventsMTime(dir string) int64 {
	st, err := os.Stat(filepath.Join(dir, EventsDir))
	if err != nil {
		return 0
	}
	return st.ModTime().UnixNano()
}
