package wire_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/wire"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEventLine: an event's line of a stream (storedir.AppendEvent, one
// line) decodes through Line as the event, Data byte for byte (through
// rawData when it holds a line break), and the ID and timestamp with it.
func TestEventLine(t *testing.T) {
	ts := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	for _, data := range []string{"", `{"a": 1}`, `"{\"a\":1}"`, "{\n \"a\": [1,\r\n 2]\n}", `7`} {
		e := dcb.SequencedEvent{Event: dcb.Event{Type: "T", Tags: []string{"a", `q"uote`}, Data: json.RawMessage(data),
			Metadata: map[string]string{"k": "v\n"}, ID: "id-7", Timestamp: ts}, Position: 42}
		if data == "" {
			e.Data = nil
		}
		line := storedir.AppendEvent(nil, e, true)
		var l wire.Line
		require.NoError(t, json.Unmarshal(line, &l), "%s", line)
		assert.Equal(t, e, l.Event())
	}
}

// TestAppendRequestBody: the client's body parses as the server parses it,
// Data byte for byte.
func TestAppendRequestBody(t *testing.T) {
	events := []dcb.Event{
		{Type: "A", Tags: []string{"t:1"}, Data: json.RawMessage(`{"x": [1, 2]}`), Metadata: map[string]string{"m": "1", "n": "2"}},
		{Type: "B", Data: json.RawMessage(`"<json>"`)},
	}
	cond := &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Types: []string{"A"}, Tags: []string{"t:1"}}}}, After: 9}
	var req wire.AppendRequest
	require.NoError(t, wire.DecodeStrict(wire.AppendRequestBody(nil, events, cond), &req))
	require.Len(t, req.Events, 2)
	assert.Equal(t, `{"x": [1, 2]}`, string(req.Events[0].Data))
	assert.Equal(t, `"<json>"`, string(req.Events[1].Data))
	assert.Equal(t, events[0].Metadata, req.Events[0].Metadata)
	assert.Equal(t, cond.FailIfEventsMatch, req.Condition.FailIfEventsMatch.Query())
	assert.Equal(t, uint64(9), req.Condition.After)
	var plain wire.AppendRequest
	require.NoError(t, wire.DecodeStrict(wire.AppendRequestBody(nil, events[1:], nil), &plain))
	assert.Nil(t, plain.Condition)

	assert.Error(t, wire.DecodeStrict([]byte(`{"events":[]}]`), &req), "trailing bytes")
	assert.Error(t, wire.DecodeStrict([]byte(`{"events":[],"extra":1}`), &req), "unknown field")
}
