package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

// AppendLost appends markers as lost positions (see dcb.SequencedEvent.Lost)
// at positions after+1, after+2, ..., when the store's head is after, and
// returns the position of the last one once they are durable. It is how a
// copy keeps the positions another store lost: an NDJSON import of lost
// lines (possum read A | possum append B), a cluster replica applying its
// stream. A marker holds a Type and Tags (those still known; Type "" and no
// tags when unknown) and nothing else: data, metadata, an ID or a
// timestamp, or tags without a type, is an error wrapping
// dcb.ErrInvalidEvent, as is an empty batch. A head other than after is an
// error wrapping dcb.ErrAppendConditionFailed. Either way nothing is
// written.
//
// Once appended, the markers are recorded in the store's LOST file (see
// storedir.LostFile), with why: what lost the positions, in words for an
// operator ("": a copy's lost positions), so that possum stats lists them
// and possum verify finds the file agrees with the WAL. Should that write fail, the markers
// are appended all the same: AppendLost returns their last position and
// an error saying so (possum recover records them).
func (s *Store) AppendLost(ctx context.Context, after uint64, markers []dcb.Event, why string) (uint64, error) {
	if why == "" {
		why = "appended as lost markers (store.AppendLost): positions a copy of this store's events had lost"
	}
	batch, err := checkMarkers(markers)
	if err != nil {
		return 0, err
	}
	if n, limit := StoredSize(batch), s.recordLimit(); n > limit {
		return 0, fmt.Errorf("store: append lost: %w: %d markers of %d bytes exceed the %d-byte record limit", dcb.ErrInvalidEvent, len(batch), n, limit)
	}
	req := &appendRequest{ctx: ctx, events: batch, lost: true, after: after, done: make(chan appendResult, 1)}
	if err := s.submit(ctx, []*appendRequest{req}, len(batch)); err != nil {
		return 0, err
	}
	res := <-req.done
	if res.err != nil {
		return 0, res.err
	}
	first := res.last - uint64(len(batch)) + 1
	if err := s.recordLoss(storedir.Loss{
		Lost:   []storedir.Range{{From: first, To: res.last}},
		Events: uint64(len(batch)),
		Why:    why,
	}); err != nil {
		return res.last, fmt.Errorf("store: append lost: positions %d..%d are lost markers now, but recording them in %s failed: %w (possum verify reports them, possum recover records them)",
			first, res.last, storedir.LostFile, err)
	}
	return res.last, nil
}

// checkMarkers validates markers for AppendLost and returns them as
// stored: duplicate tags dropped.
func checkMarkers(markers []dcb.Event) ([]dcb.Event, error) {
	if len(markers) == 0 {
		return nil, fmt.Errorf("store: append lost: %w: empty batch", dcb.ErrInvalidEvent)
	}
	batch := make([]dcb.Event, len(markers))
	for i, m := range markers {
		var err error
		switch {
		case len(m.Data) > 0 || len(m.Metadata) > 0 || m.ID != "" || !m.Timestamp.IsZero():
			err = fmt.Errorf("%w: a lost marker has only a type and tags, not data, metadata, an id or a timestamp", dcb.ErrInvalidEvent)
		case m.Type == "" && len(m.Tags) > 0:
			err = fmt.Errorf("%w: a lost marker of unknown type (\"\") has no tags", dcb.ErrInvalidEvent)
		case m.Type != "":
			err = m.Validate()
		}
		if err != nil {
			return nil, fmt.Errorf("store: append lost: marker %d: %w", i, err)
		}
		batch[i] = dcb.Event{Type: m.Type, Tags: m.Normalized().Tags}
	}
	return batch, nil
}

// lostHeadMoved is the error of an AppendLost whose after is not the head.
func lostHeadMoved(head, after uint64) error {
	return fmt.Errorf("store: append lost: %w: the head is %d, not %d (the markers go right after it)", dcb.ErrAppendConditionFailed, head, after)
}

// lostAt reports whether the acknowledged event at position at is a lost
// marker, and its type; a failed read says no. Called by an append's own
// goroutine once told of a conflict there, never by the writer, whose
// loop need not read the WAL for it.
func (s *Store) lostAt(at uint64) (string, bool) {
	e, err := s.wal.NewReader().Event(at)
	return e.Type, err == nil && e.Lost
}

// LostConditionFailed is the error of an append whose condition, after
// the position after, failed on the lost position's marker at position at,
// of type typ ("": unknown); it wraps dcb.ErrAppendConditionFailed. Failing
// is the only safe answer: the lost event might have failed the condition.
// It is not a failure for good: a read of the condition's query yields
// the marker, so a decision that reads again moves its After past it. Any
// engine holding markers (a cluster node) fails such a condition with it.
func LostConditionFailed(after, at uint64, typ string) error {
	what := "an event whose type and tags are unknown: it might have matched the condition"
	if typ != "" {
		what = fmt.Sprintf("an event of type %q whose type and tags match the condition", typ)
	}
	return fmt.Errorf("%w: position %d, after the condition's %d, was lost (%s; its event is gone): read the condition's query again, which yields the lost position, and decide again after it",
		dcb.ErrAppendConditionFailed, at, after, what)
}

// lossMu serialises the writes to the LOST file of the stores of this
// process.
var lossMu sync.Mutex

// recordLoss appends l to the store's LOST file.
func (s *Store) recordLoss(l storedir.Loss) error {
	lossMu.Lock()
	defer lossMu.Unlock()
	fs := s.fs
	if fs == nil {
		fs = vfs.OS
	}
	l.Time = time.Now()
	return storedir.RecordLoss(fs, s.dir, l)
}
