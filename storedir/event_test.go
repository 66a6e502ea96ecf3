package storedir_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzAppendString: the string encoding is encoding/json's, byte for byte,
// for every string (invalid UTF-8 included).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\`, "<a href='x'>&amp;</a>", "\u2028\u2029", "\x00\x01\b\f\n\r\t\x1f\x7f", "\xff\xfe", "é🦘", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(storedir.AppendString(nil, s)))
	})
}

// TestEventRoundTrip: DecodeEvent(AppendEvent(e)) is e, in both modes;
// oneLine writes data with a line break compacted and its bytes as
// rawData, and every other event as the event file does.
func TestEventRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	for _, data := range []string{"", `{"a": 1}`, `"{\"a\":1}"`, "{\n \"a\": [1,\r\n 2]\n}", `7`} {
		e := dcb.SequencedEvent{Event: dcb.Event{Type: "T<&>", Tags: []string{"a", `q"uote`, "\u2028"}, Data: json.RawMessage(data),
			Metadata: map[string]string{"k": "v\n"}, ID: "id-1", Timestamp: ts}, Position: 42}
		e.Event = e.Normalized()
		file := storedir.AppendEventFile(nil, e)
		require.True(t, json.Valid(file), "%s", file)
		line := storedir.AppendEvent(nil, e, true)
		assert.NotContains(t, string(line), "\n")
		for _, b := range [][]byte{file, line} {
			got, err := storedir.DecodeEvent(b)
			require.NoError(t, err)
			assert.Equal(t, e, got, "%s", b)
		}
		if !containsBreak(data) {
			assert.Equal(t, string(file[:len(file)-1]), string(line), "no line break: one encoding")
		}
	}
}

func containsBreak(s string) bool {
	for _, c := range s {
		if c == '\n' || c == '\r' {
			return true
		}
	}
	return false
}

// TestMarkerEncoding: a lost marker is {"position":N,"lost":true}, with
// "type" and "tags" when its type is known, nothing else, in both modes;
// DecodeEvent gives it back with Lost set, and refuses a marker that
// carries more than a type and tags.
func TestMarkerEncoding(t *testing.T) {
	cases := []struct {
		e    dcb.SequencedEvent
		want string
	}{
		{dcb.SequencedEvent{Position: 17, Lost: true}, `{"position":17,"lost":true}`},
		{dcb.SequencedEvent{Event: dcb.Event{Type: "Paid<>"}, Position: 18, Lost: true}, `{"position":18,"lost":true,"type":"Paid\u003c\u003e","tags":[]}`},
		{dcb.SequencedEvent{Event: dcb.Event{Type: "Paid", Tags: []string{"a", "b"}}, Position: 19, Lost: true}, `{"position":19,"lost":true,"type":"Paid","tags":["a","b"]}`},
	}
	for _, c := range cases {
		assert.Equal(t, c.want+"\n", string(storedir.AppendEventFile(nil, c.e)))
		assert.Equal(t, c.want, string(storedir.AppendEvent(nil, c.e, true)))
		got, err := storedir.DecodeEvent([]byte(c.want))
		require.NoError(t, err)
		assert.Equal(t, c.e, got)
	}
	for _, bad := range []string{
		`{"position":3,"lost":true,"data":{"a":1}}`,
		`{"position":3,"lost":true,"metadata":{"k":"v"}}`,
		`{"position":3,"lost":true,"timestamp":"2026-01-01T00:00:00Z"}`,
		`{"position":3,"lost":true,"id":"x"}`,
		`{"position":3,"lost":true,"tags":["t"]}`,
	} {
		_, err := storedir.DecodeEvent([]byte(bad))
		assert.ErrorContains(t, err, "lost marker at position 3 carries", bad)
	}
	// An event that is no marker keeps its zero time when it has none
	// in the JSON, and a "lost":false is an event.
	got, err := storedir.DecodeEvent([]byte(`{"position":4,"lost":false,"type":"A","tags":[],"data":null,"metadata":{},"timestamp":"2026-01-01T00:00:00Z"}`))
	require.NoError(t, err)
	assert.False(t, got.Lost)
	assert.Equal(t, "A", got.Type)
}
