package store

import (
	"fmt"

	"github.com/possumstore/possum/dcb"
)

// Idempotent appends. Every event ID the store holds is in the in-memory
// index (indexer.Index.ID), all of them, for as long as the store exists:
// the window of exact retries is the whole store, at about 38 bytes of
// memory per ID (indexer.BenchmarkIDMemory). An append whose events all carry IDs the store holds, as
// the same events at consecutive positions in the same order, is a retry: it
// is answered with their positions and writes nothing. The check comes
// before the append condition, which the retried events themselves would
// fail.

// EventByID returns the position and the event of the acknowledged event
// whose ID is id; ok is false when the store holds none (an append in
// flight is not seen until acknowledged). It is a dcb.Held, so that what
// appends to the store from elsewhere (a cluster node whose replica it
// is) applies dcb.Retried, the store's own rule of idempotent appends,
// against it. Safe for concurrent use; it fails with ErrClosed once the
// store is closed.
func (s *Store) EventByID(id string) (pos uint64, e dcb.Event, ok bool, err error) {
	if s.closed() {
		return 0, dcb.Event{}, false, ErrClosed
	}
	pos, exact, ok := s.idx.ID(id)
	if !ok || pos > s.head.Load() {
		return 0, dcb.Event{}, false, nil
	}
	se, err := s.wal.NewReader().Event(pos)
	switch {
	case err != nil && s.closed():
		return 0, dcb.Event{}, false, ErrClosed
	case err != nil:
		return 0, dcb.Event{}, false, fmt.Errorf("store: read the event of id %q at position %d: %w", id, pos, err)
	case !exact && se.ID != id:
		return 0, dcb.Event{}, false, nil // another ID with the same hash
	}
	return pos, se.Event, true, nil
}

// retried is dcb.Retried for req against the store and the writer's
// in-flight events. Called by the writer only.
func (s *Store) retried(req *appendRequest) (uint64, error) {
	return dcb.Retried(req.events, s.heldID)
}

// heldID returns the position and the event of the event whose ID is id,
// ok false when the store holds none: from the WAL once acknowledged, from
// the writer's in-flight events before.
func (s *Store) heldID(id string) (pos uint64, e dcb.Event, ok bool, err error) {
	pos, exact, ok := s.idx.ID(id)
	if !ok {
		return 0, dcb.Event{}, false, nil
	}
	if pos > s.head.Load() {
		e, ok = s.inflight.event(pos)
		if !ok {
			return 0, dcb.Event{}, false, fmt.Errorf("store: the event at position %d is neither acknowledged nor in flight", pos) // a bug
		}
	} else {
		if s.idReader == nil {
			s.idReader = s.wal.NewReader()
		}
		se, err := s.idReader.Event(pos)
		if err != nil {
			return 0, dcb.Event{}, false, fmt.Errorf("store: read the event of id %q at position %d: %w", id, pos, err)
		}
		e = se.Event
	}
	if !exact && e.ID != id {
		return 0, dcb.Event{}, false, nil // another ID with the same hash
	}
	return pos, e, true, nil
}

// inflight holds the events the writer wrote that the syncer has not yet
// acknowledged, by position: what a retry is compared with before they can
// be read from the WAL. Owned by the writer goroutine.
type inflight struct {
	from   uint64 // position of events[0]
	events []dcb.Event
}

// add appends the events at positions first, first+1, ...: the positions
// after those held.
func (f *inflight) add(first uint64, events []dcb.Event) {
	if len(f.events) == 0 {
		f.from = first
	}
	f.events = append(f.events, events...)
}

// trim drops the events at or below acked: readable from the WAL now.
func (f *inflight) trim(acked uint64) {
	if len(f.events) == 0 || acked < f.from {
		return
	}
	n := min(acked-f.from+1, uint64(len(f.events)))
	f.events, f.from = f.events[n:], f.from+n
	if len(f.events) == 0 {
		f.events = nil // let the array go
	}
}

// event returns the in-flight event at pos.
func (f *inflight) event(pos uint64) (dcb.Event, bool) {
	if pos < f.from || pos-f.from >= uint64(len(f.events)) {
		return dcb.Event{}, false
	}
	return f.events[pos-f.from], true
}
