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
