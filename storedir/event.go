package storedir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/possumstore/possum/dcb"
)

// AppendEvent appends e as one JSON object, the one encoding of an event
// that the event files, possum read's NDJSON and the HTTP API all write:
// the keys position, type, tags, data, metadata, timestamp, in that order,
// then id when the event has one. data holds the event's JSON bytes
// verbatim (null when it has none); tags is [] and metadata {} (keys in
// byte order) when empty; timestamp is RFC 3339 with nanoseconds, UTC.
// Strings are escaped as encoding/json escapes them (<, > and &, U+2028
// and U+2029 too). The encoding is deterministic: an event file can be
// compared byte for byte with the encoding of its WAL record.
//
// With oneLine, data holding a line break (whitespace between its JSON
// tokens) is written compacted, and its stored bytes follow as the string
// rawData, so that the object fits on one line (NDJSON, a stream); for any
// other event the two modes write the same bytes.
//
// A lost marker (e.Lost, see dcb.SequencedEvent) is written
// {"position":17,"lost":true}, with "type" and "tags" after lost when its
// type is known, and nothing else (no data, metadata, timestamp or id, never
// made-up ones), in both modes. A reader checks "lost" before anything else.
func AppendEvent(dst []byte, e dcb.SequencedEvent, oneLine bool) []byte {
	dst = append(dst, `{"position":`...)
	dst = strconv.AppendUint(dst, e.Position, 10)
	if e.Lost {
		return appendMarker(dst, e)
	}
	dst = append(dst, `,"type":`...)
	dst = AppendString(dst, e.Type)
	dst = appendTags(dst, e.Tags)
	dst = append(dst, `,"data":`...)
	rawData := false
	switch {
	case len(e.Data) == 0:
		dst = append(dst, "null"...)
	case oneLine && bytes.ContainsAny(e.Data, "\r\n"):
		b := bytes.NewBuffer(dst)
		if json.Compact(b, e.Data) != nil {
			// Stored data is valid JSON; should it not be, say so
			// rather than break the line.
			b.Truncate(len(dst))
			b.WriteString("null")
		}
		dst, rawData = b.Bytes(), true
	default:
		dst = append(dst, e.Data...)
	}
	if rawData {
		dst = append(dst, `,"rawData":`...)
		dst = AppendString(dst, string(e.Data))
	}
	dst = append(dst, `,"metadata":{`...)
	keys := make([]string, 0, len(e.Metadata))
	for k := range e.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		dst = AppendString(dst, e.Metadata[k])
	}
	dst = append(dst, `},"timestamp":"`...)
	dst = e.Timestamp.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if e.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = AppendString(dst, e.ID)
	}
	return append(dst, '}')
}

// appendMarker appends the rest of a lost marker after its position:
// "lost":true, then "type" and "tags" when its type is known (tags [] when
// it had none), nothing else: a marker has no data, metadata, timestamp or
// ID, and none is made up.
func appendMarker(dst []byte, e dcb.SequencedEvent) []byte {
	dst = append(dst, `,"lost":true`...)
	if e.Type != "" {
		dst = append(dst, `,"type":`...)
		dst = AppendString(dst, e.Type)
		dst = appendTags(dst, e.Tags)
	}
	return append(dst, '}')
}

// appendTags appends the key tags and its array.
func appendTags(dst []byte, tags []string) []byte {
	dst = append(dst, `,"tags":[`...)
	for i, t := range tags {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, t)
	}
	return append(dst, ']')
}

// AppendEventFile appends the content of the event file of e: AppendEvent
// (data verbatim) and a newline.
func AppendEventFile(dst []byte, e dcb.SequencedEvent) []byte {
	return append(AppendEvent(dst, e, false), '\n')
}

// EventJSON is an event as AppendEvent writes it, for encoding/json to
// decode (Event gives the event).
type EventJSON struct {
	Position  uint64            `json:"position"`
	Lost      bool              `json:"lost"`
	Type      string            `json:"type"`
	Tags      []string          `json:"tags"`
	Data      json.RawMessage   `json:"data"`
	RawData   *string           `json:"rawData"`
	Metadata  map[string]string `json:"metadata"`
	Timestamp *time.Time        `json:"timestamp"`
	ID        string            `json:"id"`
}

// DecodeEvent parses what AppendEvent wrote (an event file, a line of
// NDJSON), either mode, into the event as the store returns it. A lost
// marker that carries more than a type and tags is an error (CheckMarker).
func DecodeEvent(b []byte) (dcb.SequencedEvent, error) {
	var f EventJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return dcb.SequencedEvent{}, fmt.Errorf("storedir: event: %w", err)
	}
	if err := f.CheckMarker(); err != nil {
		return dcb.SequencedEvent{}, fmt.Errorf("storedir: event: %w", err)
	}
	return f.Event(), nil
}

// CheckMarker returns an error naming what a lost marker carries beyond a
// type and tags (data, metadata, a timestamp, an id), nil when f is no
// marker or carries nothing more: a marker keeps no content, so one that
// does was not written by possum.
func (f *EventJSON) CheckMarker() error {
	if !f.Lost {
		return nil
	}
	var extra []string
	if len(f.Data) > 0 && string(f.Data) != "null" || f.RawData != nil {
		extra = append(extra, "data")
	}
	if len(f.Metadata) > 0 {
		extra = append(extra, "metadata")
	}
	if f.Timestamp != nil {
		extra = append(extra, "a timestamp")
	}
	if f.ID != "" {
		extra = append(extra, "an id")
	}
	if f.Type == "" && len(f.Tags) > 0 {
		extra = append(extra, "tags without a type")
	}
	if len(extra) > 0 {
		at := ""
		if f.Position != 0 {
			at = fmt.Sprintf(" at position %d", f.Position)
		}
		return fmt.Errorf("the lost marker%s carries %s; a marker has only a type and tags, when known", at, strings.Join(extra, ", "))
	}
	return nil
}

// Event returns the event f holds, as the store returns it: data from
// rawData when it is there, the JSON null as no data, empty tags and
// metadata nil, the timestamp in UTC; for a lost marker, Lost, and its
// type and tags alone.
func (f *EventJSON) Event() dcb.SequencedEvent {
	if f.Lost {
		e := dcb.Event{Type: f.Type, Tags: f.Tags}.Normalized()
		return dcb.SequencedEvent{Event: e, Position: f.Position, Lost: true}
	}
	data := f.Data
	if f.RawData != nil {
		data = json.RawMessage(*f.RawData)
	}
	var ts time.Time
	if f.Timestamp != nil {
		ts = *f.Timestamp
	}
	e := dcb.Event{Type: f.Type, Tags: f.Tags, Data: data, Metadata: f.Metadata, ID: f.ID, Timestamp: ts}.Normalized()
	return dcb.SequencedEvent{Event: e, Position: f.Position}
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as encoding/json escapes
// it: ", \ and control characters; <, > and & (as \u003c, \u003e, \u0026);
// U+2028 and U+2029; a byte that is not UTF-8 as U+FFFD (the store keeps
// only UTF-8).
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
