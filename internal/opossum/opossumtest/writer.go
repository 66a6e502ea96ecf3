package opossumtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/platform"
)

// Writer appends to an Opossum store as Opossum 0.5.0 does: under
// .store.lock when the store has one, each event file written to a
// temporary file and renamed into place, in position order, then the
// ledger moved past them (also by rename). It is for tests: it does not
// fsync.
type Writer struct {
	Dir  string
	last uint64
}

// Event is what a test appends: tag keys must hold no ':' or '\' (Want
// spells the possum tag plainly), Payload is the inner event object's
// JSON, "$type" included.
type Event struct {
	Type      string
	Tags      [][2]string
	Payload   string
	Timestamp time.Time
	Metadata  map[string]string
}

// NewWriter makes an empty context at dir, as Opossum's StorageInitializer
// does (an empty ledger, the events directory), with .store.lock when lock
// is set, as Opossum 0.4.0 and later have.
func NewWriter(dir string, lock bool) (*Writer, error) {
	if err := os.MkdirAll(filepath.Join(dir, "events"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ".ledger"), nil, 0o644); err != nil {
		return nil, err
	}
	if lock {
		if err := os.WriteFile(filepath.Join(dir, ".store.lock"), nil, 0o644); err != nil {
			return nil, err
		}
	}
	return &Writer{Dir: dir}, nil
}

// Append writes events at the next positions and returns them as they
// must import.
func (w *Writer) Append(events []Event) ([]dcb.SequencedEvent, error) {
	unlock, err := w.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	want := make([]dcb.SequencedEvent, len(events))
	for i, e := range events {
		pos := w.last + uint64(i) + 1
		b, se := render(pos, e)
		if err := writeRenamed(filepath.Join(w.Dir, "events", fmt.Sprintf("%010d.json", pos)), b); err != nil {
			return nil, err
		}
		want[i] = se
	}
	w.last += uint64(len(events))
	ledger := fmt.Sprintf("{\n  \"LastSequencePosition\": %d,\n  \"EventCount\": %d\n}", w.last, w.last)
	return want, writeRenamed(filepath.Join(w.Dir, ".ledger"), []byte(ledger))
}

// lock takes .store.lock when there is one, polling while it is held (by
// the importer under test, for a moment).
func (w *Writer) lock() (func(), error) {
	f, err := os.Open(filepath.Join(w.Dir, ".store.lock"))
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(time.Minute); ; {
		err := platform.Lock(f, true)
		if err == nil {
			return func() { _ = platform.Unlock(f) }, nil
		}
		if !errors.Is(err, platform.ErrLocked) || time.Now().After(deadline) {
			f.Close()
			return nil, err
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// render writes the event file of e at pos as System.Text.Json indents it
// (two spaces, LF as on Linux) and returns the event it must import as.
func render(pos uint64, e Event) ([]byte, dcb.SequencedEvent) {
	str := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	ts := e.Timestamp.UTC().Truncate(100 * time.Nanosecond) // .NET ticks
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"event\": {\n    \"eventType\": %s,\n    \"event\": %s,\n    \"tags\": [", str(e.Type), e.Payload)
	var se dcb.SequencedEvent
	se.Position, se.Type, se.Data = pos, e.Type, json.RawMessage(e.Payload)
	for i, t := range e.Tags {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "\n      {\n        \"key\": %s,\n        \"value\": %s\n      }", str(t[0]), str(t[1]))
		se.Tags = append(se.Tags, t[0]+":"+t[1])
	}
	if len(e.Tags) > 0 {
		b.WriteString("\n    ")
	}
	fmt.Fprintf(&b, "]\n  },\n  \"position\": %d,\n  \"metadata\": {\n    \"timestamp\": %q", pos, ts.Format("2006-01-02T15:04:05.9999999")+"+00:00")
	for k, v := range e.Metadata {
		fmt.Fprintf(&b, ",\n    %s: %s", str(k), str(v))
	}
	b.WriteString("\n  }\n}")
	if len(e.Metadata) > 0 {
		se.Metadata = e.Metadata
	}
	se.Timestamp = ts
	return b.Bytes(), se
}

func writeRenamed(path string, b []byte) error {
	var suffix [16]byte
	_, _ = rand.Read(suffix[:])
	tmp := path + ".tmp." + hex.EncodeToString(suffix[:])
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
