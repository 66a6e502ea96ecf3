package wal

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeFrame feeds arbitrary bytes to DecodeFrame, both as they are and
// wrapped in a valid header (a random frame almost never has a valid
// checksum, so the wrapped form is what reaches the payload decoder). It must
// never panic; an error must wrap ErrCorrupt; a decoded record must re-encode
// to a frame that decodes to an equal record, and the scan's header decoder
// must agree with it.
func FuzzDecodeFrame(f *testing.F) {
	for _, r := range []Record{
		{FirstPosition: 1, Stamp: ts, Events: []dcb.Event{{Type: "A"}}},
		{FirstPosition: 300, Stamp: time.Unix(0, -1).UTC(), Events: []dcb.Event{
			{Type: "CourseDefined", Tags: []string{"course:c1", "x"}, Data: json.RawMessage(`{"n":1}`), Metadata: map[string]string{"a": "b", "c": ""}},
			{Type: "Ünï", Tags: []string{"🦝"}},
		}},
		{FirstPosition: 9, Stamp: ts, Events: []dcb.Event{{Type: "A", Tags: []string{"t"}}, {Type: "B", ID: "b"}, {}}, Lost: []bool{true, false, true}},
	} {
		frame, err := AppendFrame(nil, r)
		require.NoError(f, err)
		f.Add(frame)
		f.Add(frame[frameHeaderSize:])
		f.Add(frame[:len(frame)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{FormatVersion, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		checkDecode(t, reframe(b))
	})
}

func checkDecode(t *testing.T, frame []byte) {
	r, err := DecodeFrame(frame)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("DecodeFrame error %v does not wrap ErrCorrupt", err)
		}
		if r.Events != nil || r.Lost != nil || r.FirstPosition != 0 || !r.Stamp.IsZero() {
			t.Fatalf("DecodeFrame returned a partial record %+v with error %v", r, err)
		}
		return
	}
	if len(r.Events) == 0 || r.FirstPosition == 0 {
		t.Fatalf("DecodeFrame accepted an empty record or position 0: %+v", r)
	}
	first, count, err := decodeHeader(frame)
	if err != nil || first != r.FirstPosition || count != len(r.Events) {
		t.Fatalf("decodeHeader = %d, %d, %v; DecodeFrame = %d, %d events", first, count, err, r.FirstPosition, len(r.Events))
	}
	again, err := AppendFrame(nil, r)
	if err != nil {
		t.Fatalf("re-encoding a decoded record: %v", err)
	}
	r2, err := DecodeFrame(again)
	if err != nil {
		t.Fatalf("decoding a re-encoded record: %v", err)
	}
	require.Equal(t, r, r2)
	// The canonical encoding is a fixed point.
	again2, err := AppendFrame(nil, r2)
	require.NoError(t, err)
	require.Equal(t, again, again2)
}

// FuzzRoundTrip builds a record from fuzz inputs and checks that
// DecodeFrame(AppendFrame(r)) gives it back.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), int64(0), uint8(1), "A", "", "", "", "", "")
	f.Add(uint64(42), int64(1709212455123456789), uint8(3), "CourseDefined", "course:c1", "student:s1", "hello", "correlation", "abc")
	f.Add(uint64(1<<64-1), int64(-1), uint8(0), "Ünïcødé", "城市:東京", "🦝", "\x00\xff\"\\", "", "\xff")
	f.Add(uint64(0), int64(-1<<63), uint8(255), "", "", "", "", "k", "")

	f.Fuzz(func(t *testing.T, first uint64, nanos int64, shape uint8, typ, tag1, tag2, data, key, value string) {
		if first == 0 {
			first = 1
		}
		// shape: bits 0-1 number of events - 1, bit 2 tag1, bit 3 tag2,
		// bit 4 data, bit 5 metadata, bit 6 empty-but-non-nil collections,
		// bit 7 every other event a lost marker (its type and tags only).
		n := int(shape&3) + 1
		if first > math.MaxUint64-uint64(n-1) {
			first = math.MaxUint64 - uint64(n-1)
		}
		r := Record{FirstPosition: first, Stamp: time.Unix(0, nanos)}
		for i := range n {
			e := dcb.Event{Type: typ}
			if shape&(1<<6) != 0 {
				e.Tags, e.Data, e.Metadata = []string{}, json.RawMessage{}, map[string]string{}
			}
			if shape&(1<<2) != 0 {
				e.Tags = append(e.Tags, tag1)
			}
			if shape&(1<<3) != 0 {
				e.Tags = append(e.Tags, tag2, tag1)
			}
			if shape&(1<<4) != 0 {
				js, err := json.Marshal(data) // a valid JSON string literal
				require.NoError(t, err)
				e.Data = js
			}
			if shape&(1<<5) != 0 {
				e.Metadata = map[string]string{key: value, value + "/": key}
			}
			if i%2 == 1 {
				e.Type = typ + tag1
			}
			r.Events = append(r.Events, e)
		}
		if shape&(1<<7) != 0 {
			r.Lost = make([]bool, n)
			for i := 0; i < n; i += 2 {
				r.Lost[i] = true
				r.Events[i] = dcb.Event{Type: r.Events[i].Type, Tags: r.Events[i].Tags}
			}
		}

		frame, err := AppendFrame(nil, r)
		require.NoError(t, err)
		got, err := DecodeFrame(frame)
		require.NoError(t, err)
		requireRecordEqual(t, r, got)
	})
}
