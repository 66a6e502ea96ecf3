package projector

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/possumstore/possum/dcb"
)

// EncodeEvent returns the content of an event file: one JSON object with the
// keys position, type, tags, data, metadata, timestamp, in that order, then
// id when the event has one. data holds the event's JSON bytes verbatim
// (null when it has none); tags is [] and metadata {} when empty; timestamp
// is RFC 3339 with nanoseconds, UTC.
// The encoding is deterministic, so a file can be compared byte for byte
// with the encoding of its WAL record.
func EncodeEvent(dst []byte, e dcb.SequencedEvent) []byte {
	dst = append(dst, `{"position":`...)
	dst = strconv.AppendUint(dst, e.Position, 10)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.Type)
	dst = append(dst, `,"tags":[`...)
	for i, t := range e.Tags {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, t)
	}
	dst = append(dst, `],"data":`...)
	if len(e.Data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, e.Data...)
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
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, e.Metadata[k])
	}
	dst = append(dst, `},"timestamp":"`...)
	dst = e.Timestamp.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if e.ID != "" {
		dst = append(dst, `,"id":`...)
		dst = appendJSONString(dst, e.ID)
	}
	return append(dst, "}\n"...)
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

type eventFile struct {
	Position  uint64            `json:"position"`
	Type      string            `json:"type"`
	Tags      []string          `json:"tags"`
	Data      json.RawMessage   `json:"data"`
	Metadata  map[string]string `json:"metadata"`
	Timestamp time.Time         `json:"timestamp"`
	ID        string            `json:"id"`
}

// DecodeEvent parses the content of an event file.
func DecodeEvent(b []byte) (dcb.SequencedEvent, error) {
	var f eventFile
	if err := json.Unmarshal(b, &f); err != nil {
		return dcb.SequencedEvent{}, fmt.Errorf("projector: event file: %w", err)
	}
	if string(f.Data) == "null" {
		f.Data = nil
	}
	e := dcb.Event{Type: f.Type, Tags: f.Tags, Data: f.Data, Metadata: f.Metadata, ID: f.ID, Timestamp: f.Timestamp}.Normalized()
	return dcb.SequencedEvent{Event: e, Position: f.Position}, nil
}
