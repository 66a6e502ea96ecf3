package wal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ts is a fixed, UTC timestamp as DecodeFrame returns them.
var ts = time.Date(2024, 2, 29, 13, 14, 15, 123456789, time.UTC)

// normalized returns r as DecodeFrame returns it: no Stamp, each event with
// its timestamp (r's Stamp for those without one) in UTC without a
// monotonic reading, and empty Tags, Data and Metadata nil.
func normalized(r Record) Record {
	out := Record{FirstPosition: r.FirstPosition}
	for i, e := range r.Events {
		if r.isLost(i) {
			// A marker: no timestamp, whatever the record's stamp.
			if out.Lost == nil {
				out.Lost = make([]bool, len(r.Events))
			}
			out.Lost[i] = true
		} else if e.Timestamp.IsZero() {
			e.Timestamp = r.Stamp
		}
		if !e.Timestamp.IsZero() {
			e.Timestamp = time.Unix(0, e.Timestamp.UnixNano()).UTC()
		}
		if len(e.Tags) == 0 {
			e.Tags = nil
		}
		if len(e.Data) == 0 {
			e.Data = nil
		}
		if len(e.Metadata) == 0 {
			e.Metadata = nil
		}
		out.Events = append(out.Events, e)
	}
	return out
}

// requireRecordEqual compares a record with the decoding of want, every
// timestamp in UTC.
func requireRecordEqual(t testing.TB, want, got Record) {
	t.Helper()
	for i, e := range got.Events {
		if !got.isLost(i) {
			require.Equal(t, time.UTC, e.Timestamp.Location(), "event %d", i)
		}
	}
	require.Equal(t, normalized(want), got)
}

func TestFrameRoundTrip(t *testing.T) {
	manyEvents := make([]dcb.Event, 1000)
	for i := range manyEvents {
		manyEvents[i] = dcb.Event{
			Type:     fmt.Sprintf("Type%d", i%7),
			Tags:     []string{fmt.Sprintf("item:%d", i), "batch:x"},
			Data:     json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)),
			Metadata: map[string]string{"n": fmt.Sprint(i)},
		}
	}
	long := strings.Repeat("0123456789abcdef", 1<<12) // 64 KiB
	tests := []struct {
		name string
		rec  Record
	}{
		{"minimal", Record{FirstPosition: 1, Stamp: ts, Events: []dcb.Event{{Type: "A"}}}},
		{"empty type", Record{FirstPosition: 1, Stamp: ts, Events: []dcb.Event{{}}}},
		{"tags data metadata", Record{FirstPosition: 42, Stamp: ts, Events: []dcb.Event{{
			Type:     "CourseDefined",
			Tags:     []string{"course:c1", "student:s1"},
			Data:     json.RawMessage(`{"capacity":10,"name":"Maths"}`),
			Metadata: map[string]string{"correlation": "abc", "causation": "def", "": "empty key"},
		}}}},
		{"several events", Record{FirstPosition: 7, Stamp: ts, Events: []dcb.Event{
			{Type: "A", Tags: []string{"t"}},
			{Type: "B", Data: json.RawMessage(`null`)},
			{Type: "C", Metadata: map[string]string{"k": ""}},
		}}},
		{"unicode", Record{FirstPosition: 3, Stamp: ts, Events: []dcb.Event{{
			Type:     "Ünïcødé✓",
			Tags:     []string{"城市:東京", "emoji:🦝", "rtl:שלום"},
			Data:     json.RawMessage(`{"名前":"ポッサム","e":"🐀\u0000"}`),
			Metadata: map[string]string{"κλειδί": "τιμή", "🔑": "🗝"},
		}}}},
		{"long strings", Record{FirstPosition: 1 << 40, Stamp: ts, Events: []dcb.Event{{
			Type:     long,
			Tags:     []string{long, long[:200]},
			Data:     json.RawMessage(`"` + long + `"`),
			Metadata: map[string]string{long: long},
		}}}},
		{"many events", Record{FirstPosition: 100, Stamp: ts, Events: manyEvents}},
		{"max position", Record{FirstPosition: 1<<64 - 1, Stamp: ts, Events: []dcb.Event{{Type: "last"}}}},
		{"unix epoch", Record{FirstPosition: 1, Stamp: time.Unix(0, 0).UTC(), Events: []dcb.Event{{Type: "A"}}}},
		{"before epoch", Record{FirstPosition: 1, Stamp: time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC), Events: []dcb.Event{{Type: "A"}}}},
		{"non-UTC timestamp", Record{FirstPosition: 1, Stamp: ts.In(time.FixedZone("X", 5*3600)), Events: []dcb.Event{{Type: "A"}}}},
		{"monotonic timestamp", Record{FirstPosition: 1, Stamp: time.Now(), Events: []dcb.Event{{Type: "A"}}}},
		{"empty slices and maps", Record{FirstPosition: 5, Stamp: ts, Events: []dcb.Event{{
			Type: "A", Tags: []string{}, Data: json.RawMessage{}, Metadata: map[string]string{},
		}}}},
		{"nil slices and maps", Record{FirstPosition: 5, Stamp: ts, Events: []dcb.Event{{
			Type: "A", Tags: nil, Data: nil, Metadata: nil,
		}}}},
		{"lost markers", Record{FirstPosition: 5, Stamp: ts, Events: []dcb.Event{
			{Type: "A", Tags: []string{"x"}}, {Type: "B", Tags: []string{"x", "y"}, Data: json.RawMessage(`{}`), ID: "b"}, {},
		}, Lost: []bool{true, false, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame, err := AppendFrame(nil, tt.rec)
			require.NoError(t, err)
			got, err := DecodeFrame(frame)
			require.NoError(t, err)
			requireRecordEqual(t, tt.rec, got)
			for i, e := range got.Events {
				if len(tt.rec.Events[i].Data) == 0 {
					assert.Nil(t, e.Data, "event %d: empty data must decode to nil", i)
				}
				if len(tt.rec.Events[i].Metadata) == 0 {
					assert.Nil(t, e.Metadata, "event %d: empty metadata must decode to nil", i)
				}
				if len(tt.rec.Events[i].Tags) == 0 {
					assert.Nil(t, e.Tags, "event %d: empty tags must decode to nil", i)
				}
			}
			assert.Equal(t, tt.rec.FirstPosition+uint64(len(tt.rec.Events))-1, got.LastPosition())

			// The encoding is deterministic (metadata keys are sorted), so
			// re-encoding the decoded record gives the same bytes.
			again, err := AppendFrame(nil, got)
			require.NoError(t, err)
			assert.Equal(t, frame, again)

			// AppendFrame appends: a prefix in dst is kept as is.
			prefix := []byte("prefix")
			withPrefix, err := AppendFrame(prefix, tt.rec)
			require.NoError(t, err)
			assert.Equal(t, "prefix", string(withPrefix[:len(prefix)]))
			assert.Equal(t, frame, withPrefix[len(prefix):])
		})
	}
}

// TestFrameLayout pins the version 2 frame byte for byte, checksums
// included (golden bytes: a change of the encoding or of the checksum
// function fails here, whatever the code computes).
func TestFrameLayout(t *testing.T) {
	stamp := time.Unix(0, 0x0102030405060708).UTC()
	own := time.Unix(0, 0x1112131415161718).UTC()
	r := Record{FirstPosition: 1, Stamp: stamp, Events: []dcb.Event{
		{Type: "A"}, {Type: "BC", Tags: []string{"t"}, ID: "id", Timestamp: own},
	}}
	frame, err := AppendFrame(nil, r)
	require.NoError(t, err)
	golden := strings.Join([]string{
		"03", "47000000", "daf3c6b3ec10ca16", // version, payload length 71, frame checksum
		"0100000000000000", "02000000", // first position 1, 2 events
		"2b000000", "47000000", // where entries 0 and 1 end: payload offsets 43, 71
		"0c69b79e24d8d0c1", "0807060504030201", "00", // entry 0: its checksum, timestamp (the record's stamp), flags
		"0141", "00", "00", "00", "00", // type "A", no tags, no data, no metadata, no id
		"ead76cb13150ce55", "1817161514131211", "00", // entry 1: its own timestamp
		"024243", "01", "0174", "00", "00", "026964", // type "BC", one tag "t", no data, no metadata, id "id"
	}, "")
	assert.Equal(t, golden, hex.EncodeToString(frame))
	assert.Equal(t, frameChecksum(frame), binary.LittleEndian.Uint64(frame[5:13]))
	assert.Equal(t, entryChecksum(2, frame[frameHeaderSize+43+8:]), binary.LittleEndian.Uint64(frame[frameHeaderSize+43:]))
	got, err := DecodeFrame(frame)
	require.NoError(t, err)
	requireRecordEqual(t, r, got)
}

// TestFrameLayoutV2: a version 2 frame (the golden bytes the possum of
// format 2 wrote) still decodes, every event with the record's timestamp.
func TestFrameLayoutV2(t *testing.T) {
	frame, err := hex.DecodeString(strings.Join([]string{
		"02", "41000000", "e518b510e2f36ffc", // version, payload length 65, frame checksum
		"0100000000000000", "02000000", // first position 1, 2 events
		"29000000", "41000000", // where entries 0 and 1 end: payload offsets 41, 65
		"5f74c5b8fcc0b988", "0807060504030201", // entry 0: its checksum, timestamp
		"0141", "00", "00", "00", // type "A", no tags, no data, no metadata
		"8a93e20dd74328bc", "0807060504030201", // entry 1
		"024243", "01", "0174", "00", "00", // type "BC", one tag "t", no data, no metadata
	}, ""))
	require.NoError(t, err)
	got, err := DecodeFrame(frame)
	require.NoError(t, err)
	stamp := time.Unix(0, 0x0102030405060708).UTC()
	requireRecordEqual(t, Record{FirstPosition: 1, Stamp: stamp, Events: []dcb.Event{
		{Type: "A"}, {Type: "BC", Tags: []string{"t"}},
	}}, got)
}

// TestMarkerLayout pins the lost markers of a version 3 frame byte for
// byte (golden bytes): flag 0x01, timestamp 0, the type and tags still known
// (or none), no data, no metadata, no ID; the record's stamp applies to its
// other events only.
func TestMarkerLayout(t *testing.T) {
	stamp := time.Unix(0, 0x0102030405060708).UTC()
	r := Record{FirstPosition: 3, Stamp: stamp, Events: []dcb.Event{
		{Type: "A"}, {Type: "BC", Tags: []string{"t"}}, {},
	}, Lost: []bool{false, true, true}}
	frame, err := AppendFrame(nil, r)
	require.NoError(t, err)
	golden := strings.Join([]string{
		"03", "5f000000", "8582b2d0997cf3a6", // version, payload length 95, frame checksum
		"0300000000000000", "03000000", // first position 3, 3 events
		"2f000000", "49000000", "5f000000", // where entries end: 47, 73, 95
		"6aed8c8f5109d694", "0807060504030201", "00", "0141", "00", "00", "00", "00", // an event: type "A"
		"d9a524f31da2c232", "0000000000000000", "01", // a marker: timestamp 0, flag lost
		"024243", "01", "0174", "00", "00", "00", // known type "BC" and tag "t"; no data, metadata, id
		"d9da9e5cb48021ec", "0000000000000000", "01", // a marker whose type and tags are unknown
		"00", "00", "00", "00", "00", // type "", no tags, no data, no metadata, no id
	}, "")
	assert.Equal(t, golden, hex.EncodeToString(frame))
	got, err := DecodeFrame(frame)
	require.NoError(t, err)
	assert.Equal(t, []bool{false, true, true}, got.Lost)
	assert.Equal(t, dcb.SequencedEvent{Event: dcb.Event{Type: "BC", Tags: []string{"t"}}, Position: 4, Lost: true}, got.Event(4))
	assert.Equal(t, dcb.SequencedEvent{Position: 5, Lost: true}, got.Event(5))
	assert.Equal(t, dcb.SequencedEvent{Event: dcb.Event{Type: "A", Timestamp: stamp}, Position: 3}, got.Event(3))
	for pos := uint64(3); pos <= 5; pos++ {
		h, err := parseHeaderV2(frame[0], frame[frameHeaderSize:])
		require.NoError(t, err)
		e, err := decodeEntry(formatV3, pos, h.entry(int(pos-3)))
		require.NoError(t, err)
		assert.Equal(t, got.Event(pos), e, "position %d read alone", pos)
	}
}

// TestInvalidMarkers: a marker that would carry more than a type and tags
// is refused before anything is encoded, and one found in a frame (with
// checksums that hold: a writer's bug) is damage, never an event.
func TestInvalidMarkers(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Record
	}{
		{"data", Record{FirstPosition: 1, Events: []dcb.Event{{Type: "A", Data: json.RawMessage(`1`)}}, Lost: []bool{true}}},
		{"metadata", Record{FirstPosition: 1, Events: []dcb.Event{{Type: "A", Metadata: map[string]string{"k": "v"}}}, Lost: []bool{true}}},
		{"id", Record{FirstPosition: 1, Events: []dcb.Event{{Type: "A", ID: "x"}}, Lost: []bool{true}}},
		{"timestamp", Record{FirstPosition: 1, Events: []dcb.Event{{Type: "A", Timestamp: ts}}, Lost: []bool{true}}},
		{"lost flags short", Record{FirstPosition: 1, Events: []dcb.Event{{Type: "A"}, {Type: "B"}}, Lost: []bool{true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := AppendFrame([]byte("keep"), tc.r)
			assert.ErrorIs(t, err, ErrInvalidMarker)
			assert.Equal(t, "keep", string(out))
		})
	}

	// A marker entry rewritten to carry more, its checksums made to hold.
	frame, err := AppendFrame(nil, Record{FirstPosition: 7, Events: []dcb.Event{{Type: "A"}}, Lost: []bool{true}})
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		edit func(entry []byte) []byte
		want string
	}{
		{"with a timestamp", func(e []byte) []byte { e[8] = 1; return e }, "a lost marker carries"},
		{"with data", func(e []byte) []byte { return append(e[:len(e)-3], 1, '1', 0, 0) }, "a lost marker carries"},
		{"with metadata", func(e []byte) []byte { return append(e[:len(e)-2], 1, 1, 'k', 1, 'v', 0) }, "a lost marker carries"},
		{"with an id", func(e []byte) []byte { return append(e[:len(e)-1], 1, 'x') }, "a lost marker carries"},
		{"with flag 0x02", func(e []byte) []byte { e[v2EntryHeader] = 0x02; return e }, "unknown entry flags 0x02"},
		{"with flags 0x03", func(e []byte) []byte { e[v2EntryHeader] = 0x03; return e }, "unknown entry flags 0x03"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entry := tc.edit(bytes.Clone(frame[frameHeaderSize+v2PayloadHeader+4:]))
			binary.LittleEndian.PutUint64(entry, entryChecksum(7, entry[8:]))
			payload := binary.LittleEndian.AppendUint64(nil, 7)
			payload = binary.LittleEndian.AppendUint32(payload, 1)
			payload = binary.LittleEndian.AppendUint32(payload, uint32(v2PayloadHeader+4+len(entry)))
			bad := reframe(append(payload, entry...))
			_, err := DecodeFrame(bad)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.ErrorContains(t, err, tc.want)
			_, err = decodeEntry(formatV3, 7, entry)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestReadsFormatV1: a WAL written by version 1 (testdata/v1, written by the
// possum of that format) is read exactly, and appends after it (version 2)
// read back too, before and after a reopen.
func TestReadsFormatV1(t *testing.T) {
	dir := t.TempDir()
	seg, err := os.ReadFile(filepath.Join("testdata", "v1", segmentName(1)))
	require.NoError(t, err)
	require.Equal(t, byte(formatV1), seg[1], "the golden segment holds version 1 frames")
	require.NoError(t, os.WriteFile(filepath.Join(dir, segmentName(1)), seg, 0o640))

	ts := time.Date(2026, 11, 27, 4, 0, 0, 123456789, time.UTC)
	want := []Record{
		{FirstPosition: 1, Stamp: ts, Events: []dcb.Event{{Type: "CourseDefined", Tags: []string{"course:c1"}, Data: json.RawMessage(`{"capacity":2}`)}}},
		{FirstPosition: 2, Stamp: ts.Add(time.Second), Events: []dcb.Event{
			{Type: "StudentSubscribed", Tags: []string{"course:c1", "student:ada"}, Data: json.RawMessage(`{"at":"2026-11-27"}`), Metadata: map[string]string{"by": "demo", "corr": "x1"}},
			{Type: "StudentSubscribed", Tags: []string{"course:c1", "student:bob", "🦘"}},
			{Type: "Noted"},
		}},
	}
	l := openLog(t, dir, Options{})
	checkLog(t, l, want)
	more := []Record{{FirstPosition: 5, Stamp: ts.Add(2 * time.Second), Events: []dcb.Event{{Type: "A", Tags: []string{"x"}}, {Type: "B"}}}}
	require.NoError(t, l.Append(more))
	want = append(want, more...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
	b, err := os.ReadFile(filepath.Join(dir, segmentName(1)))
	require.NoError(t, err)
	assert.Equal(t, seg, b[:len(seg)], "the version 1 frames are left as they are")

	for _, trust := range []uint64{0, 4, 6} {
		l = openLog(t, dir, Options{TrustPosition: trust})
		checkLog(t, l, want)
		rd := l.NewReader()
		for _, pos := range []uint64{6, 3, 5, 1, 4, 2} { // out of order: events read alone where they can be
			e, err := rd.Event(pos)
			require.NoError(t, err)
			assert.Equal(t, pos, e.Position)
		}
		require.NoError(t, l.Close())
	}
}

// TestReadsFormatV2: a WAL written by version 2 (testdata/v2, written by
// the possum of that format) is read exactly, each event with its record's
// timestamp; appends after it (version 3, with IDs and timestamps of their
// own) read back too, and its events are read alone by version.
func TestReadsFormatV2(t *testing.T) {
	dir := t.TempDir()
	seg, err := os.ReadFile(filepath.Join("testdata", "v2", segmentName(1)))
	require.NoError(t, err)
	require.Equal(t, byte(formatV2), seg[1], "the golden segment holds version 2 frames")
	require.NoError(t, os.WriteFile(filepath.Join(dir, segmentName(1)), seg, 0o640))

	ts := time.Date(2026, 12, 1, 9, 30, 0, 987654321, time.UTC)
	want := []Record{
		{FirstPosition: 1, Stamp: ts, Events: []dcb.Event{{Type: "CourseDefined", Tags: []string{"course:c1"}, Data: json.RawMessage(`{"capacity":2}`)}}},
		{FirstPosition: 2, Stamp: ts.Add(time.Second), Events: []dcb.Event{
			{Type: "StudentSubscribed", Tags: []string{"course:c1", "student:ada"}, Data: json.RawMessage(`{"at":"2026-12-01"}`), Metadata: map[string]string{"by": "demo", "corr": "x1"}},
			{Type: "StudentSubscribed", Tags: []string{"course:c1", "student:bob", "🦘"}},
			{Type: "Noted"},
		}},
	}
	l := openLog(t, dir, Options{})
	checkLog(t, l, want)
	more := []Record{{FirstPosition: 5, Stamp: ts.Add(2 * time.Second), Events: []dcb.Event{
		{Type: "A", Tags: []string{"x"}, ID: "a-1"}, {Type: "B", Timestamp: ts.Add(-time.Hour)},
	}}}
	require.NoError(t, l.Append(more))
	want = append(want, more...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
	b, err := os.ReadFile(filepath.Join(dir, segmentName(1)))
	require.NoError(t, err)
	assert.Equal(t, seg, b[:len(seg)], "the version 2 frames are left as they are")

	events := eventsOf(want)
	for _, trust := range []uint64{0, 4, 6} {
		for _, m := range readModes {
			l = openLogMode(t, dir, Options{TrustPosition: trust}, m.pread)
			rd := l.NewReader()
			for _, pos := range []uint64{6, 3, 5, 1, 4, 2} { // out of order: events read alone
				e, err := rd.Event(pos)
				require.NoError(t, err)
				assert.Equal(t, events[pos], e, "%s, trust %d", m.name, trust)
			}
			require.NoError(t, l.Close())
		}
	}
}

func TestRecordEvent(t *testing.T) {
	r := Record{FirstPosition: 10, Events: []dcb.Event{{Type: "A"}, {Type: "B", Timestamp: ts}, {Type: "C"}}}
	assert.Equal(t, uint64(12), r.LastPosition())
	e := r.Event(11)
	assert.Equal(t, dcb.SequencedEvent{Event: dcb.Event{Type: "B", Timestamp: ts}, Position: 11}, e)
}

// reframe rebuilds a frame's header around payload with a valid checksum.
func reframe(payload []byte) []byte {
	frame := make([]byte, frameHeaderSize, frameHeaderSize+len(payload))
	frame = append(frame, payload...)
	frame[0] = FormatVersion
	binary.LittleEndian.PutUint32(frame[1:5], uint32(len(payload)))
	binary.LittleEndian.PutUint64(frame[5:13], frameChecksum(frame))
	return frame
}

func TestDecodeFrameDamaged(t *testing.T) {
	good, err := AppendFrame(nil, Record{FirstPosition: 9, Stamp: ts, Events: []dcb.Event{
		{Type: "A", Tags: []string{"x", "y"}, Data: json.RawMessage(`{"a":1}`), Metadata: map[string]string{"k": "v"}},
		{Type: "B"},
	}})
	require.NoError(t, err)
	payload := good[frameHeaderSize:]
	damaged := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	var le8 [8]byte
	binary.LittleEndian.PutUint64(le8[:], uint64(ts.UnixNano()))

	tests := []struct {
		name  string
		frame []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"header only", good[:frameHeaderSize]},
		{"truncated header", good[:frameHeaderSize-1]},
		{"truncated by one", good[:len(good)-1]},
		{"truncated by half", good[:len(good)/2]},
		{"one extra byte", append(append([]byte(nil), good...), 0)},
		{"version 0", damaged(func(b []byte) []byte { b[0] = 0; return b })},
		{"version 4", damaged(func(b []byte) []byte { b[0] = 4; return b })},
		{"version 255", damaged(func(b []byte) []byte { b[0] = 0xff; return b })},
		{"length too small", damaged(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[1:5], uint32(len(payload)-1)); return b })},
		{"length too large", damaged(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[1:5], uint32(len(payload)+1)); return b })},
		{"length huge", damaged(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[1:5], 1<<32-1); return b })},
		{"checksum flipped", damaged(func(b []byte) []byte { b[5] ^= 0x10; return b })},
		{"payload bit flip first", damaged(func(b []byte) []byte { b[frameHeaderSize] ^= 1; return b })},
		{"payload bit flip middle", damaged(func(b []byte) []byte { b[frameHeaderSize+len(payload)/2] ^= 0x80; return b })},
		{"payload bit flip last", damaged(func(b []byte) []byte { b[len(b)-1] ^= 4; return b })},
		{"zeroed", make([]byte, len(good))},
		// Valid checksums around payloads that do not decode: only a writer
		// bug could produce these, but they must still be errors, not panics.
		{"valid frame, empty payload", reframe(nil)},
		{"valid frame, position 0", reframe(append(append([]byte{0}, le8[:]...), 1, 1, 'A', 0, 0, 0))},
		{"valid frame, no events", reframe(append(append([]byte{1}, le8[:]...), 0))},
		{"valid frame, short timestamp", reframe([]byte{1, 2, 3})},
		{"valid frame, bad uvarint", reframe(append(append([]byte{1}, le8[:]...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))},
		{"valid frame, huge event count", reframe(append(append([]byte{1}, le8[:]...), 0xff, 0xff, 0xff, 0xff, 0x0f, 0))},
		{"valid frame, type runs past end", reframe(append(append([]byte{1}, le8[:]...), 1, 50, 'A'))},
		{"valid frame, huge tag count", reframe(append(append([]byte{1}, le8[:]...), 1, 1, 'A', 0xff, 0xff, 0x7f, 0, 0))},
		{"valid frame, data runs past end", reframe(append(append([]byte{1}, le8[:]...), 1, 1, 'A', 0, 9, '{'))},
		{"valid frame, metadata value missing", reframe(append(append([]byte{1}, le8[:]...), 1, 1, 'A', 0, 0, 1, 1, 'k'))},
		{"valid frame, trailing bytes", reframe(append(append([]byte(nil), payload...), 0))},
		{"valid frame, payload cut", reframe(payload[:len(payload)-1])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeFrame(tt.frame)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.Equal(t, Record{}, r, "no partial record")
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(good) {
			_, err := DecodeFrame(good[:n])
			require.ErrorIs(t, err, ErrCorrupt, "cut to %d bytes", n)
		}
	})
	t.Run("every bit flip", func(t *testing.T) {
		for i := range len(good) {
			for bit := range 8 {
				b := append([]byte(nil), good...)
				b[i] ^= 1 << bit
				_, err := DecodeFrame(b)
				require.ErrorIs(t, err, ErrCorrupt, "bit %d of byte %d flipped", bit, i)
			}
		}
	})
}

func TestAppendFrameTooLarge(t *testing.T) {
	// One buffer for all frames: growing a 64 MiB slice again and again is
	// slow under the race detector.
	buf := make([]byte, 0, frameHeaderSize+MaxRecordSize+64)
	data := make([]byte, MaxRecordSize)
	data[0], data[len(data)-1] = '"', '"'
	r := Record{FirstPosition: 1, Stamp: ts, Events: []dcb.Event{{Type: "A", Data: data}}}
	buf = append(buf, "keep"...)
	out, err := AppendFrame(buf, r)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrRecordTooLarge)
	assert.False(t, errors.Is(err, ErrCorrupt))
	assert.Equal(t, "keep", string(out), "dst comes back without a partial frame")

	// The largest payload that fits is MaxRecordSize exactly. Its overhead:
	// first position, event count, the entry's end offset, its checksum,
	// timestamp and flags, type, tag count, data length (a 4-byte uvarint),
	// metadata count, id length.
	fixed := 8 + 4 + 4 + 8 + 8 + 1 + 2 + 1 + 4 + 1 + 1
	r.Events[0].Data = data[:MaxRecordSize-fixed]
	r.Events[0].Data[len(r.Events[0].Data)-1] = '"'
	frame, err := AppendFrame(buf[:0], r)
	require.NoError(t, err)
	require.Len(t, frame, frameHeaderSize+MaxRecordSize)
	_, err = checkFrame(frame)
	require.NoError(t, err)

	r.Events[0].Data = data[:MaxRecordSize-fixed+1]
	_, err = AppendFrame(buf[:0], r)
	assert.ErrorIs(t, err, ErrRecordTooLarge)
}

// TestEventAloneDamage: an event read alone (not in a scan) reads only its
// own entry and the two offsets bounding it, and still never returns a
// damaged byte: damage in its entry or in those offsets fails the read with
// ErrCorrupt; damage elsewhere in the record leaves it exact, and Verify and
// a scanning Open find it.
func TestEventAloneDamage(t *testing.T) {
	events := []dcb.Event{
		{Type: "A", Tags: []string{"x"}, Data: json.RawMessage(`{"i":0}`)},
		{Type: "B", Tags: []string{"x", "y"}, Data: json.RawMessage(`{"i":1}`), Metadata: map[string]string{"k": "v"}},
		{Type: "C", Data: json.RawMessage(`{"i":2}`)},
		{Type: "D", Tags: []string{"z"}},
		{Type: "E", Data: json.RawMessage(`"last"`)},
	}
	rec := Record{FirstPosition: 1, Stamp: ts, Events: events}
	frame, err := AppendFrame(nil, rec)
	require.NoError(t, err)
	h, err := parseHeaderV2(frame[0], frame[frameHeaderSize:])
	require.NoError(t, err)
	// Frame offsets of entry i and of the offset that ends it.
	entryAt := func(i int) int { return frameHeaderSize + h.events[i] - v3EntryHeader }
	endAt := func(i int) int { return frameHeaderSize + v2PayloadHeader + 4*i }

	for _, tc := range []struct {
		name string
		at   int   // the frame byte flipped
		bad  []int // the events whose read must fail
	}{
		{"an event's body", entryAt(2) + v3EntryHeader + 2, []int{2}},
		{"an event's flags", entryAt(2) + 16, []int{2}},
		{"an event's checksum", entryAt(2) + 3, []int{2}},
		{"an event's timestamp", entryAt(2) + 8, []int{2}},
		{"another event's body", entryAt(4) + v3EntryHeader, []int{4}},
		{"the offset ending an entry", endAt(1), []int{1, 2}},
		{"the offset ending the last entry", endAt(4) + 1, []int{4}},
		{"the record's first position", frameHeaderSize + 1, nil},
		{"the record's event count", frameHeaderSize + 8, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, Options{})
			require.NoError(t, l.Append([]Record{rec}))
			require.NoError(t, l.Append([]Record{{FirstPosition: 6, Stamp: ts, Events: []dcb.Event{{Type: "F"}}}}))
			require.NoError(t, l.Close())
			path := filepath.Join(dir, segmentName(1))
			prefix := uvarintLen(uint64(len(frame))) // tidwall's length prefix
			flipBit(t, path, int64(prefix+tc.at))

			// A checkpoint vouches for both records: Open does not read them.
			for _, m := range readModes {
				l = openLogMode(t, dir, Options{TrustPosition: 6}, m.pread)
				for i := range events {
					pos := uint64(i + 1)
					e, err := l.NewReader().Event(pos) // a fresh reader: the event alone
					if slices.Contains(tc.bad, i) {
						assert.ErrorIs(t, err, ErrCorrupt, "%s: event %d", m.name, i)
						continue
					}
					require.NoError(t, err, "%s: event %d", m.name, i)
					assert.Equal(t, normalized(rec).Event(pos), e, "%s: event %d is exact", m.name, i)
				}
				require.NoError(t, l.Close())
			}

			rep, err := Verify(dir, nil)
			require.NoError(t, err)
			require.NotNil(t, rep.Damage, "Verify finds it")
			assert.False(t, rep.Damage.Torn)
			_, _, err = Open(dir, Options{})
			assert.ErrorIs(t, err, ErrCorrupt, "a scanning Open finds it")
		})
	}
}

// TestUnknownEntryFlags: an entry whose flags this possum does not know,
// with checksums that hold (a newer writer's, or a writer's bug), is
// refused as damage when read, whole or alone: never read as an event.
func TestUnknownEntryFlags(t *testing.T) {
	r := Record{FirstPosition: 7, Stamp: ts, Events: []dcb.Event{{Type: "A"}, {Type: "B", ID: "b"}}}
	frame, err := AppendFrame(nil, r)
	require.NoError(t, err)
	h, err := parseHeaderV2(frame[0], frame[frameHeaderSize:])
	require.NoError(t, err)
	entry := h.entry(1)
	entry[v2EntryHeader] = 0x80
	binary.LittleEndian.PutUint64(entry, entryChecksum(8, entry[8:]))
	binary.LittleEndian.PutUint64(frame[5:13], frameChecksum(frame))

	_, err = DecodeFrame(frame)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.ErrorContains(t, err, "unknown entry flags")
	_, err = decodeEntry(formatV3, 8, entry)
	assert.ErrorContains(t, err, "unknown entry flags")
}
