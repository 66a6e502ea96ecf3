package dcb

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
)

// Held finds the event a store holds with an ID: its position and the
// event; ok is false when the store holds none.
type Held func(id string) (pos uint64, e Event, ok bool, err error)

// Retried is the rule of idempotent appends, checked before an append's
// condition (which the retried events themselves would fail): it reports
// whether events repeat events a store holds, held saying which it holds.
// They do when every one carries an ID the store holds, as the same event
// (see Event.ID; a zero Timestamp matches any, since the store set the
// one it holds), at consecutive positions in their order: Retried returns
// the position of the last one, and the append is answered with it,
// writing nothing. It returns 0 and nil when no event carries an ID the
// store holds (an append as any other), and an error wrapping
// ErrIDConflict when some do but events are no retry.
func Retried(events []Event, held Held) (uint64, error) {
	var first uint64 // the position of the first event, as the held IDs say
	n, missing := 0, -1
	for i, e := range events {
		if e.ID == "" {
			if missing < 0 {
				missing = i
			}
			continue
		}
		pos, stored, ok, err := held(e.ID)
		if err != nil {
			return 0, err
		}
		if !ok {
			if missing < 0 {
				missing = i
			}
			continue
		}
		if n == 0 {
			first = pos - uint64(i)
		}
		n++
		if pos != first+uint64(i) {
			return 0, fmt.Errorf("%w: event %d (id %q) is the event at position %d, not at %d after the others: a retry sends the events of one append, in their order", ErrIDConflict, i, e.ID, pos, first+uint64(i))
		}
		if what := differs(e, stored); what != "" {
			return 0, fmt.Errorf("%w: event %d (id %q) is the event at position %d, which differs in its %s", ErrIDConflict, i, e.ID, pos, what)
		}
	}
	switch {
	case n == 0:
		return 0, nil
	case missing >= 0:
		e := events[missing]
		why := fmt.Sprintf("its id %q is new", e.ID)
		if e.ID == "" {
			why = "it has no id"
		}
		return 0, fmt.Errorf("%w: %d of the %d events carry ids the store holds, but event %d does not (%s): a retry sends the same events", ErrIDConflict, n, len(events), missing, why)
	}
	return first + uint64(len(events)) - 1, nil
}

// differs names the first field in which sent, an event of a retry
// (normalized), differs from stored, the event held with its ID; "" when
// none does.
func differs(sent, stored Event) string {
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
