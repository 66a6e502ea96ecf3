package opossum

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/possumstore/possum/dcb"
)

// fileEvent is an event file as Opossum writes it: its SequencedEvent
// serialized by System.Text.Json with camel-case names and nulls left out.
// Every version from the first store (bc7a12c) on writes this shape,
// indented (two spaces) or, from 4233649 to 0.3.0-preview.1, minified.
type fileEvent struct {
	Event    *fileDomainEvent           `json:"event"`
	Position *uint64                    `json:"position"`
	Metadata map[string]json.RawMessage `json:"metadata"`
}

// fileDomainEvent is Opossum's DomainEvent: the type the indices know, the
// payload (the application's event object, "$type" its .NET type name
// first) and the tags.
type fileDomainEvent struct {
	EventType *string         `json:"eventType"`
	Event     json.RawMessage `json:"event"`
	Tags      []fileTag       `json:"tags"`
}

// fileTag is Opossum's Tag. A null value, which Opossum allows and leaves
// out when it writes, is a nil Value.
type fileTag struct {
	Key   *string `json:"key"`
	Value *string `json:"value"`
}

// Metadata keys of an imported event. The Opossum metadata fields keep
// their JSON names (correlationId, causationId, operationId, userId and any
// a later Opossum adds); the timestamp becomes the event's timestamp.
const (
	// TimestampKey holds Opossum's timestamp text as written, when its UTC
	// offset is not zero: the event's timestamp is the same instant in UTC,
	// and this keeps the offset the application gave.
	TimestampKey = "timestamp"
)

// decodeFile parses the event file b found at position pos (its name) and
// maps it to a possum event. The error says what is wrong with the file, in
// words for a report.
func decodeFile(b []byte, pos uint64) (dcb.SequencedEvent, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a byte order mark, should an editor have added one
	switch {
	case len(bytes.TrimSpace(b)) == 0:
		return dcb.SequencedEvent{}, errors.New("empty: its write never finished")
	case len(bytes.Trim(b, "\x00")) == 0:
		return dcb.SequencedEvent{}, errors.New("zero-filled: its write was lost (a power cut before the data reached the disk)")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f fileEvent
	if err := dec.Decode(&f); err != nil {
		return dcb.SequencedEvent{}, jsonProblem(err)
	}
	if rest := b[dec.InputOffset():]; len(bytes.TrimSpace(rest)) > 0 {
		return dcb.SequencedEvent{}, fmt.Errorf("not JSON: more after the event's object, at byte %d", dec.InputOffset())
	}
	return f.sequenced(pos)
}

// sequenced is the possum event of an Opossum event file: the mapping
// docs/OPOSSUM.md describes, in this one place.
func (f *fileEvent) sequenced(pos uint64) (dcb.SequencedEvent, error) {
	var se dcb.SequencedEvent
	switch {
	case f.Position == nil:
		return se, errors.New(`no "position"`)
	case *f.Position != pos:
		return se, fmt.Errorf(`"position" is %d, not the %d of its file name`, *f.Position, pos)
	case f.Event == nil:
		return se, errors.New(`no "event"`)
	case f.Event.EventType == nil || *f.Event.EventType == "":
		return se, errors.New(`no "eventType"`)
	case len(f.Event.Event) == 0 || string(f.Event.Event) == "null":
		return se, errors.New(`no payload (the inner "event" object)`)
	}
	se.Position = pos
	se.Type = *f.Event.EventType
	// The payload's bytes as the file holds them, "$type" and indentation
	// included: json.RawMessage keeps the value's bytes, never re-encodes.
	se.Data = f.Event.Event
	for i, t := range f.Event.Tags {
		if t.Key == nil {
			return se, fmt.Errorf("tag %d has no key", i)
		}
		if t.Value == nil {
			se.Tags = append(se.Tags, KeyTag(*t.Key))
		} else {
			se.Tags = append(se.Tags, Tag(*t.Key, *t.Value))
		}
		if se.Tags[i] == "" {
			return se, fmt.Errorf("tag %d has an empty key and no value", i)
		}
	}
	ts, md, err := metadata(f.Metadata)
	if err != nil {
		return se, err
	}
	se.Metadata = md
	// Set this way, not in a composite literal, Timestamp is the event's
	// own field whether dcb.SequencedEvent declares it or promotes it from
	// dcb.Event.
	se.Timestamp = ts
	if err := se.Event.Validate(); err != nil {
		return se, err
	}
	return se, nil
}

// metadata maps Opossum's metadata object: the timestamp, and every other
// field under its own name, a string as it is, a number or any other value
// as its JSON text; nulls (which Opossum does not write) are left out.
func metadata(m map[string]json.RawMessage) (time.Time, map[string]string, error) {
	raw, ok := m[TimestampKey]
	if !ok {
		return time.Time{}, nil, errors.New(`no "metadata.timestamp"`)
	}
	var text string
	if err := json.Unmarshal(raw, &text); err != nil {
		return time.Time{}, nil, fmt.Errorf(`"metadata.timestamp" is %s, not a string`, raw)
	}
	ts, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf(`"metadata.timestamp" %q is not an ISO 8601 date and time with an offset`, text)
	}
	if ts.IsZero() {
		return time.Time{}, nil, fmt.Errorf(`"metadata.timestamp" is the zero time %q, which Opossum never writes`, text)
	}
	var md map[string]string
	put := func(k, v string) {
		if md == nil {
			md = make(map[string]string, len(m))
		}
		md[k] = v
	}
	if _, offset := ts.Zone(); offset != 0 {
		put(TimestampKey, text)
	}
	for k, v := range m {
		if k == TimestampKey || string(v) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			put(k, s)
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, v); err != nil {
			return time.Time{}, nil, fmt.Errorf("metadata %q: %v", k, err)
		}
		put(k, compact.String())
	}
	return ts.UTC(), md, nil
}

// jsonProblem says what is wrong with a file that does not decode.
func jsonProblem(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("not JSON: the file ends inside a value (a torn write)")
	case errors.As(err, &se):
		return fmt.Errorf("not JSON: %v (byte %d)", se, se.Offset)
	case errors.As(err, &te):
		return fmt.Errorf("%q: want %s, got a JSON %s", te.Field, te.Type, te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("a field this importer does not know: %s (a newer Opossum? docs/OPOSSUM.md lists the layouts covered)",
			strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

// Tag is the possum tag of the Opossum tag {key, value}: the key with each
// backslash and colon escaped by a backslash, a colon, the value as it is.
// The first colon without a backslash before it ends the key, so no two
// Opossum tags give the same possum tag: {"a:b", "c"} is `a\:b:c`, {"a",
// "b:c"} is `a:b:c`. A key without ':' or '\' reads as written, "courseId:42".
func Tag(key, value string) string {
	return escapeKey(key) + ":" + value
}

// KeyTag is the possum tag of an Opossum tag whose value is null: the
// escaped key alone, no colon, which no tag with a value (even "") gives.
func KeyTag(key string) string {
	return escapeKey(key)
}

func escapeKey(key string) string {
	if !strings.ContainsAny(key, `\:`) {
		return key
	}
	var b strings.Builder
	for _, r := range key {
		if r == '\\' || r == ':' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SplitTag is the inverse of Tag and KeyTag: the key and value of an
// imported tag, hasValue false for a KeyTag. ok is false for a tag neither
// gives (a backslash that escapes nothing, or invalid UTF-8).
func SplitTag(tag string) (key, value string, hasValue, ok bool) {
	if !utf8.ValidString(tag) {
		return "", "", false, false
	}
	var b strings.Builder
	for i := 0; i < len(tag); i++ {
		switch c := tag[i]; c {
		case '\\':
			if i+1 == len(tag) || (tag[i+1] != '\\' && tag[i+1] != ':') {
				return "", "", false, false
			}
			i++
			b.WriteByte(tag[i])
		case ':':
			return b.String(), tag[i+1:], true, true
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), "", false, true
}
