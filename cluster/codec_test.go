package cluster

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wire returns m's headers as a NATS server hands them to a subscriber:
// the header block nats.go writes, parsed back by nats.go.
func wire(t testing.TB, m *nats.Msg) nats.Header {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	require.Equal(t, headerBytes(m.Header), b.Len(), "headerBytes counts the block")
	h, err := nats.DecodeHeadersMsg(b.Bytes())
	require.NoError(t, err)
	return h
}

// roundTrip encodes e as the first message of a batch, carries it over
// the wire and decodes it.
func roundTrip(t testing.TB, e streamEvent) (streamEvent, batchMark) {
	t.Helper()
	m, err := encodeEvent("st.x", e)
	require.NoError(t, err)
	setBatch(m, "B1", true, 3)
	got, mark, err := decodeEvent("st.x", m.Subject, wire(t, m), m.Data)
	require.NoError(t, err)
	return got, mark
}

func TestCodecRoundTrip(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	cases := map[string]streamEvent{
		"bare":         {Event: dcb.Event{Type: "A", Timestamp: ts}},
		"whole second": {Event: dcb.Event{Type: "A", Timestamp: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}},
		"before 1970":  {Event: dcb.Event{Type: "A", Timestamp: time.Date(1678, 1, 1, 0, 0, 0, 1, time.UTC)}},
		"everything": {Event: dcb.Event{
			Type:      "Course.Defined *>",
			Tags:      []string{"course:c1", "a,b", "line\nbreak", "  spaced  ", `quote"back\slash`, "emoji 😀", "ctl\x01\x7f", "ü"},
			Data:      []byte(`{"x": [1, 2, "ü"]}`),
			Metadata:  map[string]string{"correlation": "c\r\n1", "": "empty key", "ключ": "значение"},
			ID:        "id: \"1\"\n",
			Timestamp: ts,
		}},
		"lost, type known": {Event: dcb.Event{Type: "A", Tags: []string{"t"}, Timestamp: ts}, Lost: true},
		"lost, unknown":    {Event: dcb.Event{Timestamp: ts}, Lost: true},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			got, mark := roundTrip(t, e)
			assert.Equal(t, e, got)
			assert.Equal(t, batchMark{id: "B1", size: 3}, mark)
		})
	}
}

func TestTypeTokens(t *testing.T) {
	for typ, want := range map[string]string{
		"CourseDefined":    "CourseDefined",
		"course-defined_2": "course-defined_2",
		"Course.Defined":   "Course%2EDefined",
		"a b*>":            "a%20b%2A%3E",
		"%":                "%25",
		"ü":                "%C3%BC",
		"\t\n":             "%09%0A",
	} {
		assert.Equal(t, want, typeToken(typ), typ)
		back, err := typeFromToken(want)
		require.NoError(t, err)
		assert.Equal(t, typ, back)
	}
	// Tokens the escaping never writes are refused: every type has one token.
	for _, tok := range []string{"", "%2e", "%41", "%", "%4", "%G1", "a.b", "a b", "a*", "a>", "%FF"} {
		_, err := typeFromToken(tok)
		assert.Error(t, err, tok)
	}
}

func TestDecodeRefusesOtherLayouts(t *testing.T) {
	good := func() *nats.Msg {
		m, err := encodeEvent("st", streamEvent{Event: dcb.Event{Type: "A", Tags: []string{"t"}, Metadata: map[string]string{"k": "v"}, ID: "i", Timestamp: time.Unix(1, 0)}})
		require.NoError(t, err)
		setBatch(m, "B", true, 1)
		return m
	}
	cases := map[string]func(m *nats.Msg){
		"other prefix":     func(m *nats.Msg) { m.Subject = "other.A" },
		"two tokens":       func(m *nats.Msg) { m.Subject = "st.A.B" },
		"bad escape":       func(m *nats.Msg) { m.Subject = "st.%2e" },
		"no time":          func(m *nats.Msg) { m.Header.Del(hdrTime) },
		"local time":       func(m *nats.Msg) { m.Header.Set(hdrTime, "1970-01-01T01:00:01+01:00") },
		"time spelled out": func(m *nats.Msg) { m.Header.Set(hdrTime, "1970-01-01T00:00:01.000Z") },
		"no batch":         func(m *nats.Msg) { m.Header.Del(hdrBatch) },
		"batch size 0":     func(m *nats.Msg) { m.Header.Set(hdrBatchSize, "0") },
		"batch size +1":    func(m *nats.Msg) { m.Header.Set(hdrBatchSize, "+1") },
		"tags not json":    func(m *nats.Msg) { m.Header.Set(hdrTags, "t") },
		"tags empty":       func(m *nats.Msg) { m.Header.Set(hdrTags, "[]") },
		"tags raw utf-8":   func(m *nats.Msg) { m.Header.Set(hdrTags, `["ü"]`) },
		"tags spaced":      func(m *nats.Msg) { m.Header.Set(hdrTags, `[ "t"]`) },
		"metadata dup key": func(m *nats.Msg) { m.Header.Set(hdrMetadata, `{"k":"v","k":"w"}`) },
		"metadata unsorted": func(m *nats.Msg) {
			m.Header.Set(hdrMetadata, `{"b":"1","a":"2"}`)
		},
		"id not a string":  func(m *nats.Msg) { m.Header.Set(hdrID, "i") },
		"twice":            func(m *nats.Msg) { m.Header.Add(hdrTags, `["u"]`) },
		"lost with data":   func(m *nats.Msg) { m.Header.Set(hdrLost, "1"); m.Data = []byte("1") },
		"lost spelled yes": func(m *nats.Msg) { m.Header.Set(hdrLost, "yes") },
	}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			m := good()
			spoil(m)
			_, _, err := decodeEvent("st", m.Subject, m.Header, m.Data)
			assert.ErrorIs(t, err, errLayout)
		})
	}
	m := good()
	_, _, err := decodeEvent("st", m.Subject, m.Header, m.Data)
	require.NoError(t, err, "the unspoiled message decodes")
}

func TestCheckLimits(t *testing.T) {
	enc := func(e streamEvent) *nats.Msg {
		m, err := encodeEvent("st", e)
		require.NoError(t, err)
		return m
	}
	ok := enc(streamEvent{Event: dcb.Event{Type: "A", Data: []byte(`"` + strings.Repeat("x", 1000) + `"`)}})
	require.NoError(t, checkLimits(ok, "A", 1<<20))
	cases := map[string]struct {
		m    *nats.Msg
		want string
	}{
		"long type": {enc(streamEvent{Event: dcb.Event{Type: strings.Repeat(".", 700)}}), "subject"},
		"big tags":  {enc(streamEvent{Event: dcb.Event{Type: "A", Tags: []string{strings.Repeat("t", 70000)}}}), "header limit"},
		"big data":  {enc(streamEvent{Event: dcb.Event{Type: "A", Data: []byte(`"` + strings.Repeat("x", 1<<20) + `"`)}}), "max_payload"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := checkLimits(c.m, "A", 1<<20)
			assert.ErrorIs(t, err, dcb.ErrInvalidEvent)
			assert.ErrorContains(t, err, c.want)
		})
	}
}

// FuzzCodec: any event round-trips through the layout and the wire
// exactly, and decoding arbitrary headers never panics.
func FuzzCodec(f *testing.F) {
	f.Add("CourseDefined", "course:c1\x00student:s1", []byte(`{"a":1}`), "k", "v", "id-1", int64(1_700_000_000_123456789), false, "[\"x\"]")
	f.Add("a.b c", "a,b\x00c\nd", []byte{}, "", "", "", int64(0), true, "")
	f.Add("😀", "\u2028", []byte("\xff"), "\x00", "\"", "\\", int64(-1), false, "{")
	f.Fuzz(func(t *testing.T, typ, tags string, data []byte, mk, mv, id string, nanos int64, lost bool, junk string) {
		// Arbitrary header values never panic the decoder.
		h := nats.Header{hdrTags: {junk}, hdrMetadata: {junk}, hdrID: {junk}, hdrTime: {junk}, hdrBatch: {junk}, hdrBatchSize: {junk}, hdrLost: {junk}}
		_, _, _ = decodeEvent("p", "p."+junk, h, data)

		if !utf8.ValidString(typ) || !utf8.ValidString(tags) || !utf8.ValidString(mk) || !utf8.ValidString(mv) || !utf8.ValidString(id) {
			return // the store refuses these before they reach the codec
		}
		e := streamEvent{Event: dcb.Event{Type: typ, ID: id, Timestamp: time.Unix(0, nanos).UTC()}, Lost: lost}
		if typ == "" && !lost {
			return
		}
		if tags != "" {
			e.Tags = strings.Split(tags, "\x00")
		}
		if len(data) > 0 && !lost {
			e.Data = data
		}
		if mk != "" || mv != "" {
			if lost {
				return
			}
			e.Metadata = map[string]string{mk: mv}
		}
		if lost {
			e.ID = ""
		}
		m, err := encodeEvent("p", e)
		require.NoError(t, err)
		setBatch(m, "B", false, 0)
		got, mark, err := decodeEvent("p", m.Subject, wire(t, m), m.Data)
		require.NoError(t, err)
		if !got.Timestamp.Equal(e.Timestamp) {
			t.Fatalf("timestamp %v came back %v", e.Timestamp, got.Timestamp)
		}
		got.Timestamp = e.Timestamp
		require.Equal(t, e, got)
		require.Equal(t, batchMark{id: "B"}, mark)
		for k, vs := range m.Header {
			for _, v := range vs {
				for i := 0; i < len(v); i++ {
					if v[i] < 0x20 || v[i] >= 0x7f {
						t.Fatalf("header %s carries byte %#x", k, v[i])
					}
				}
			}
		}
	})
}

// TestPushedMarkerRoundTrip: a store's lost position's marker, as a push
// publishes it, is a marker on the stream (Possum-Lost: 1, the subject of
// its known type or the lost token, its tags), stamped with the time it
// was pushed (not the placeholder of an unstamped event), and comes back
// as the marker the store holds: type and tags, nothing else.
func TestPushedMarkerRoundTrip(t *testing.T) {
	n := &Node{prefix: "st", maxPayload: 1 << 20}
	ts := time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	for name, c := range map[string]struct {
		e       dcb.SequencedEvent
		subject string
	}{
		"known marker":   {dcb.SequencedEvent{Event: dcb.Event{Type: "Paid", Tags: []string{"a", "b"}}, Position: 4, Lost: true}, "st.Paid"},
		"unknown marker": {dcb.SequencedEvent{Position: 5, Lost: true}, "st." + lostToken},
		"event":          {dcb.SequencedEvent{Event: dcb.Event{Type: "Paid", Tags: []string{"a"}, Data: []byte(`1`), ID: "i", Timestamp: ts}, Position: 6}, "st.Paid"},
	} {
		t.Run(name, func(t *testing.T) {
			before := time.Now()
			m, err := n.pushMessage(c.e)
			require.NoError(t, err)
			assert.Equal(t, c.subject, m.Subject)
			setBatch(m, "B", true, 1)
			got, _, err := decodeEvent("st", m.Subject, wire(t, m), m.Data)
			require.NoError(t, err)
			assert.Equal(t, c.e.Lost, got.Lost)
			assert.Equal(t, c.e.Event, toStore(got))
			if c.e.Lost {
				assert.Equal(t, "1", m.Header.Get(hdrLost))
				assert.False(t, got.Timestamp.Before(before.Truncate(time.Second)), "stamped when pushed: %v", got.Timestamp)
				assert.False(t, got.Timestamp.After(time.Now()), "stamped when pushed: %v", got.Timestamp)
			}
		})
	}
}
