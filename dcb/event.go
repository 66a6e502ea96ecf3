package dcb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Event is what an application appends.
type Event struct {
	// Type names what happened, e.g. "CourseDefined". Required, non-empty UTF-8.
	Type string
	// Tags name the things the event is about, e.g. "course:c1". Optional;
	// each one non-empty UTF-8; duplicates are dropped when stored.
	Tags []string
	// Data is the event's payload. Optional; when set it must be valid JSON.
	// It is stored byte for byte, less whitespace around the value; the JSON
	// literal null counts as no data (Data comes back nil).
	Data json.RawMessage
	// Metadata carries context such as correlation or causation ids. Optional;
	// keys and values must be valid UTF-8.
	Metadata map[string]string
	// ID names the event for idempotent appends: an append whose events
	// all carry IDs the store already holds, as the same events in the same
	// order, succeeds again with the positions they have and writes
	// nothing, so an append whose answer was lost can be sent again.
	// Optional (""), opaque to the store (a UUID, typically): valid UTF-8
	// of at most MaxIDLength bytes, unique within one append.
	ID string
	// Timestamp is when the event happened. Zero: the store sets it when
	// it accepts the append, to the same instant for every event of that
	// append without one. Set by the caller (an import, a migration, a
	// copy, a test), it is kept exactly, to the nanosecond, in UTC; it must
	// lie within the years 1678 to 2262 (nanoseconds since 1970 in 64
	// bits). Timestamps need not increase with positions: the position
	// orders events, the timestamp only says when.
	Timestamp time.Time
}

// MaxIDLength bounds an event ID, in bytes.
const MaxIDLength = 256

// SequencedEvent is an Event as the store holds it: its Timestamp is always
// set (by the caller or by the store), and it has a position. A lost event
// (Lost) is the exception: a marker that keeps the position of an event
// whose bytes were damaged beyond repair.
type SequencedEvent struct {
	Event
	// Position is the event's place in the store: 1, 2, 3, ... gap-free and
	// never reused.
	Position uint64
	// Lost marks a lost position: the event stored there was damaged (its
	// bytes failed their checksum and no other copy repaired them) and a
	// recovery that accepted the loss kept its position with a marker, so
	// that positions stay gap-free and are never reused. A marker has no
	// Data, Metadata, ID or Timestamp, never made-up ones. Its Type and Tags
	// are the lost event's when something still said them (its event file,
	// the index files); otherwise they are unknown: Type is "" (which no
	// real event has) and Tags nil, and the marker might have matched any
	// query. Check Lost before using an event's content.
	//
	// Reads yield a marker whose known type and tags match the query, and
	// every unknown marker in their range (it might have matched). An append
	// condition fails on a marker in its range as on an event, unknown
	// markers matching every query: the lost event might have failed the
	// condition, so refusing is the only answer that never passes one it
	// would have failed. A read of the condition's query yields the marker,
	// so a decision that reads before it appends moves its After past it.
	Lost bool
}

// minTimestamp and maxTimestamp bound a Timestamp: nanoseconds since 1970
// in a signed 64-bit integer, as the store keeps it.
var (
	minTimestamp = time.Unix(0, math.MinInt64)
	maxTimestamp = time.Unix(0, math.MaxInt64)
)

// Validate reports why e cannot be stored, as an error wrapping
// ErrInvalidEvent, or nil when it can.
func (e Event) Validate() error {
	if e.Type == "" {
		return fmt.Errorf("%w: empty type", ErrInvalidEvent)
	}
	if !utf8.ValidString(e.Type) {
		return fmt.Errorf("%w: type %q is not valid UTF-8", ErrInvalidEvent, e.Type)
	}
	for i, tag := range e.Tags {
		if err := validateTag(tag); err != nil {
			return fmt.Errorf("%w: event of type %q: tag %d: %v", ErrInvalidEvent, e.Type, i, err)
		}
	}
	if len(e.Data) > 0 && !json.Valid(e.Data) {
		return fmt.Errorf("%w: event of type %q: data is not valid JSON", ErrInvalidEvent, e.Type)
	}
	// json.Valid accepts invalid UTF-8 inside strings; the event files must
	// be JSON every reader accepts (RFC 8259 requires UTF-8).
	if !utf8.Valid(e.Data) {
		return fmt.Errorf("%w: event of type %q: data is not valid UTF-8", ErrInvalidEvent, e.Type)
	}
	for k, v := range e.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: event of type %q: metadata %q is not valid UTF-8", ErrInvalidEvent, e.Type, k)
		}
	}
	if len(e.ID) > MaxIDLength {
		return fmt.Errorf("%w: event of type %q: id of %d bytes, over the limit of %d", ErrInvalidEvent, e.Type, len(e.ID), MaxIDLength)
	}
	if !utf8.ValidString(e.ID) {
		return fmt.Errorf("%w: event of type %q: id %q is not valid UTF-8", ErrInvalidEvent, e.Type, e.ID)
	}
	if !e.Timestamp.IsZero() && (e.Timestamp.Before(minTimestamp) || e.Timestamp.After(maxTimestamp)) {
		return fmt.Errorf("%w: event of type %q: timestamp %s outside the years 1678 to 2262", ErrInvalidEvent, e.Type, e.Timestamp.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func validateTag(tag string) error {
	if tag == "" {
		return fmt.Errorf("empty tag")
	}
	if !utf8.ValidString(tag) {
		return fmt.Errorf("tag %q is not valid UTF-8", tag)
	}
	return nil
}

// Normalized returns e as the store keeps it: duplicate tags dropped (the
// first occurrence keeps its place), a Timestamp in UTC, whitespace around
// Data trimmed, and empty Data or Metadata, or Data that is the JSON null,
// made nil. It does not validate.
func (e Event) Normalized() Event {
	e.Tags = dedupe(e.Tags)
	if !e.Timestamp.IsZero() {
		e.Timestamp = e.Timestamp.UTC()
	}
	e.Data = bytes.TrimSpace(e.Data)
	if len(e.Data) == 0 || string(e.Data) == "null" {
		e.Data = nil
	}
	if len(e.Metadata) == 0 {
		e.Metadata = nil
	}
	return e
}

// smallTagCount is the tag count up to which dedupe compares every pair
// (no allocation) instead of building a set.
const smallTagCount = 16

// dedupe drops repeated strings, keeping first occurrences in order, in time
// linear in len(ss). It allocates only when there is something to drop or
// when ss is long.
func dedupe(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	if len(ss) <= smallTagCount {
		for i := 1; i < len(ss); i++ {
			for j := 0; j < i; j++ {
				if ss[i] == ss[j] {
					return dedupeSet(ss)
				}
			}
		}
		return ss
	}
	return dedupeSet(ss)
}

// dedupeSet returns ss itself when it holds no duplicate, else a copy
// without them.
func dedupeSet(ss []string) []string {
	seen := make(map[string]struct{}, len(ss))
	var out []string // nil until the first duplicate
	for i, s := range ss {
		if _, dup := seen[s]; dup {
			if out == nil {
				out = append(make([]string, 0, len(ss)-1), ss[:i]...)
			}
			continue
		}
		seen[s] = struct{}{}
		if out != nil {
			out = append(out, s)
		}
	}
	if out == nil {
		return ss
	}
	return out
}

// ValidateBatch checks a batch of events for an append: it must not be
// empty, every event must be valid, and no ID may appear twice. The error
// wraps ErrInvalidEvent and names the offending event's index.
func ValidateBatch(events []Event) error {
	if len(events) == 0 {
		return fmt.Errorf("%w: empty batch", ErrInvalidEvent)
	}
	var ids map[string]int // made at the second event with an id
	first := -1            // the first event with an id
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if e.ID == "" {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if ids == nil {
			ids = map[string]int{events[first].ID: first}
		}
		if j, dup := ids[e.ID]; dup {
			return fmt.Errorf("event %d: %w: id %q is also the id of event %d", i, ErrInvalidEvent, e.ID, j)
		}
		ids[e.ID] = i
	}
	return nil
}
