package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/possumstore/possum/dcb"
)

// Idempotent appends. Every event ID the store holds is in the in-memory
// index (indexer.Index.ID), all of them, for as long as the store exists:
// the window of exact retries is the whole store, at about 30 bytes of
// memory per ID. An append whose events all carry IDs the store holds, as
// the same events at consecutive positions in the same order, is a retry: it
// is answered with their positions and writes nothing. The check comes
// before the append condition, which the retried events themselves would
// fail.

// retried reports whether req repeats an append the store holds, returning
// the position of its last event. It returns 0 and nil when no event of req
// carries an ID the store holds, and an error wrapping dcb.ErrIDConflict
// when some do but req is no retry. Called by the writer only.
func (s *Store) retried(req *appendRequest) (uint64, error) {
	var first uint64 // the position of req's first event, as the held IDs say
	held, missing := 0, -1
	for i, e := range req.events {
		if e.ID == "" {
			if missing < 0 {
				missing = i
			}
			continue
		}
		pos, stored, ok, err := s.heldID(e.ID)
		if err != nil {
			return 0, err
		}
		if !ok {
			if missing < 0 {
				missing = i
			}
			continue
		}
		if held == 0 {
			first = pos - uint64(i)
		}
		held++
		if pos != first+uint64(i) {
			return 0, fmt.Errorf("%w: event %d (id %q) is the event at position %d, not at %d after the others: a retry sends the events of one append, in their order", dcb.ErrIDConflict, i, e.ID, pos, first+uint64(i))
		}
		if what := differs(e, stored); what != "" {
			return 0, fmt.Errorf("%w: event %d (id %q) is the event at position %d, whose %s differs", dcb.ErrIDConflict, i, e.ID, pos, what)
		}
	}
	switch {
	case held == 0:
		return 0, nil
	case missing >= 0:
		e := req.events[missing]
		why := fmt.Sprintf("its id %q is new", e.ID)
		if e.ID == "" {
			why = "it has no id"
		}
		return 0, fmt.Errorf("%w: %d of the %d events carry ids the store holds, but event %d does not (%s): a retry sends the same events", dcb.ErrIDConflict, held, len(req.events), missing, why)
	}
	return first + uint64(len(req.events)) - 1, nil
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

// differs names the first field in which sent, an event of a retry, differs
// from stored, the event the store holds with its ID; "" when none does. A
// zero Timestamp in sent is what the caller sent the first time too, when
// the store set it: it matches any.
func differs(sent, stored dcb.Event) string {
	switch {
	case sent.Type != stored.Type:
		return "type"
	case !slices.Equal(sent.Tags, stored.Tags):
		return "tags"
	case !bytes.Equal(sent.Data, stored.Data):
		return "data"
	case !maps.Equal(sent.Metadata, stored.Metadata):
		return "metadata"
	case !sent.Timestamp.IsZero() && !sent.Timestamp.Equal(stored.Timestamp):
		return "timestamp"
	}
	return ""
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
