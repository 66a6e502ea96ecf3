package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/possumstore/possum/dcb"
)

// FormatVersion is the version byte written at the start of every frame.
// Version 2 gives each event its own checksum, so that one event is read and
// verified without the rest of its record; version 3 adds each event's
// flags and ID. Versions 1 and 2 are still read.
const FormatVersion = 3

const (
	formatV1 = 1
	formatV2 = 2
	formatV3 = 3
	// v2PayloadHeader: first position (8 bytes), event count (4); the
	// same in version 3.
	v2PayloadHeader = 12
	// v2EntryHeader: an entry's checksum (8 bytes), timestamp (8).
	v2EntryHeader = 16
	// v3EntryHeader: an entry's checksum (8 bytes), timestamp (8), flags (1).
	v3EntryHeader = 17
	// flagLost marks a version 3 entry as a lost marker: the position of an
	// event a repair could not keep. Its body holds the type and tags
	// still known (or none), no data, no metadata, no ID; its timestamp
	// field is 0. Every other flag bit is unknown: damage.
	flagLost = 0x01
)

// entryHeaderSize returns the size of an entry's header in a frame of the
// given version (2 or 3).
func entryHeaderSize(version byte) int {
	if version == formatV3 {
		return v3EntryHeader
	}
	return v2EntryHeader
}

const (
	frameHeaderSize = 13
	// MaxRecordSize bounds one record's payload, so that a damaged length can
	// never ask for an absurd allocation.
	MaxRecordSize = 64 << 20
)

// Record is the content of one WAL record: the events of one append.
type Record struct {
	// FirstPosition is the position of Events[0]; the others follow gap-free.
	FirstPosition uint64
	// Stamp is when the store accepted the append (UTC, nanosecond
	// precision): the timestamp written for each event whose Timestamp is
	// zero. A decoded record leaves it zero: its events carry their
	// timestamps.
	Stamp  time.Time
	Events []dcb.Event
	// Lost marks lost markers (see dcb.SequencedEvent.Lost): when not nil it
	// has one element per event, and Lost[i] makes Events[i] a marker that
	// keeps its position. A marker carries a Type and Tags (those still
	// known; "" and none when unknown), never Data, Metadata, an ID or a
	// Timestamp, and the record's Stamp does not apply to it. Markers are
	// written by a repair and by copies that keep positions. A decoded
	// record without markers has Lost nil.
	Lost []bool
}

// LastPosition is the position of the record's last event.
func (r Record) LastPosition() uint64 { return r.FirstPosition + uint64(len(r.Events)) - 1 }

// Event returns the record's event at position pos, which must be in range.
func (r Record) Event(pos uint64) dcb.SequencedEvent {
	i := pos - r.FirstPosition
	return dcb.SequencedEvent{Event: r.Events[i], Position: pos, Lost: r.isLost(int(i))}
}

// isLost reports whether event i is a lost marker.
func (r Record) isLost(i int) bool { return r.Lost != nil && r.Lost[i] }

// ErrInvalidMarker: a record's Lost does not fit its events, or a marker
// carries more than a type and tags. Nothing is written.
var ErrInvalidMarker = errors.New("wal: invalid lost marker")

// checkMarkers reports why r's markers cannot be written, nil when they can.
func (r Record) checkMarkers() error {
	if r.Lost == nil {
		return nil
	}
	if len(r.Lost) != len(r.Events) {
		return fmt.Errorf("%w: %d lost flags for %d events", ErrInvalidMarker, len(r.Lost), len(r.Events))
	}
	for i, e := range r.Events {
		if r.Lost[i] && (len(e.Data) > 0 || len(e.Metadata) > 0 || e.ID != "" || !e.Timestamp.IsZero()) {
			return fmt.Errorf("%w: the marker at position %d carries data, metadata, an ID or a timestamp (only a type and tags)",
				ErrInvalidMarker, r.FirstPosition+uint64(i))
		}
	}
	return nil
}

var (
	// ErrCorrupt is wrapped by every error that reports damaged WAL bytes.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrRecordTooLarge: a record's payload exceeds MaxRecordSize.
	ErrRecordTooLarge = errors.New("wal: record too large")
)

// AppendFrame appends r, encoded and framed (version 3), to dst. A record
// whose markers do not check out (ErrInvalidMarker) or that is too large
// (ErrRecordTooLarge) appends nothing.
func AppendFrame(dst []byte, r Record) ([]byte, error) {
	if err := r.checkMarkers(); err != nil {
		return dst, err
	}
	stamp := uint64(r.Stamp.UnixNano())
	return appendFrame(dst, FormatVersion, r.FirstPosition, len(r.Events), func(dst []byte, i int) []byte {
		return appendEntry(dst, r.FirstPosition+uint64(i), r.Events[i], stamp, r.isLost(i))
	})
}

// appendFrame appends a frame of version 2 or 3 holding n entries from
// position first on, entry i appended by entry (which appends it whole,
// checksum included): the frame header, the payload header and the offset
// table around them. A payload over MaxRecordSize appends nothing.
func appendFrame(dst []byte, version byte, first uint64, n int, entry func(dst []byte, i int) []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, frameHeaderSize)...)
	p0 := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, first)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	table := len(dst)
	dst = append(dst, make([]byte, 4*n)...)
	for i := range n {
		dst = entry(dst, i)
		if len(dst)-p0 > MaxRecordSize {
			break // refused below; the offsets must not overflow
		}
		binary.LittleEndian.PutUint32(dst[table+4*i:], uint32(len(dst)-p0))
	}
	payload := len(dst) - p0
	if payload > MaxRecordSize {
		return dst[:start], fmt.Errorf("%w: %d bytes, limit %d", ErrRecordTooLarge, payload, MaxRecordSize)
	}
	h := dst[start : start+frameHeaderSize]
	h[0] = version
	binary.LittleEndian.PutUint32(h[1:5], uint32(payload))
	binary.LittleEndian.PutUint64(h[5:13], frameChecksum(dst[start:]))
	return dst, nil
}

// appendEntry appends the version 3 entry of event e at position pos: its
// checksum, its timestamp (stamp when e has none), its flags, its body and
// its ID; a lost marker has timestamp 0, the lost flag and only its type
// and tags (checkMarkers vouches for that).
func appendEntry(dst []byte, pos uint64, e dcb.Event, stamp uint64, lost bool) []byte {
	entry := len(dst)
	dst = append(dst, make([]byte, 8)...) // the entry's checksum, below
	ts, flags := stamp, byte(0)
	if !e.Timestamp.IsZero() {
		ts = uint64(e.Timestamp.UnixNano())
	}
	if lost {
		ts, flags = 0, flagLost
	}
	dst = binary.LittleEndian.AppendUint64(dst, ts)
	dst = append(dst, flags)
	dst = appendEventBody(dst, e)
	dst = appendString(dst, e.ID)
	binary.LittleEndian.PutUint64(dst[entry:], entryChecksum(pos, dst[entry+8:]))
	return dst
}

// appendEntryAs appends the entry of event e at position pos as a frame of
// the given version (2 or 3) holds it, with e's own timestamp: the bytes
// the writer of that version wrote for e, so that an event from another
// copy can be checked against a stored entry checksum.
func appendEntryAs(dst []byte, version byte, pos uint64, e dcb.Event) []byte {
	ts := uint64(e.Timestamp.UnixNano())
	if version == formatV3 {
		return appendEntry(dst, pos, e, ts, false)
	}
	entry := len(dst)
	dst = append(dst, make([]byte, 8)...) // the entry's checksum, below
	dst = binary.LittleEndian.AppendUint64(dst, ts)
	dst = appendEventBody(dst, e)
	binary.LittleEndian.PutUint64(dst[entry:], entryChecksum(pos, dst[entry+8:]))
	return dst
}

// appendEventBody appends an event's type, tags, data and metadata (keys in
// byte order), the same encoding in every version; version 3 follows it with
// the ID.
func appendEventBody(dst []byte, e dcb.Event) []byte {
	dst = appendString(dst, e.Type)
	dst = binary.AppendUvarint(dst, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		dst = appendString(dst, t)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Data)))
	dst = append(dst, e.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Metadata)))
	keys := make([]string, 0, len(e.Metadata))
	for k := range e.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, e.Metadata[k])
	}
	return dst
}

// entryChecksum is the checksum of a version 2 or 3 entry: xxhash64 of the event's
// position (little-endian uint64) followed by the entry's bytes after its
// checksum (timestamp and body). The position is not stored in the entry:
// an entry read in the wrong place fails its checksum.
func entryChecksum(pos uint64, rest []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	var p [8]byte
	binary.LittleEndian.PutUint64(p[:], pos)
	_, _ = d.Write(p[:])
	_, _ = d.Write(rest)
	return d.Sum64()
}

// PayloadSizeBound returns the size of the payload of a record holding
// events: a record whose bound is at most MaxRecordSize is never refused as
// too large.
func PayloadSizeBound(events []dcb.Event) int {
	str := func(n int) int { return uvarintLen(uint64(n)) + n }
	n := v2PayloadHeader
	for _, e := range events {
		n += 4 + v3EntryHeader
		n += str(len(e.Type)) + uvarintLen(uint64(len(e.Tags))) + str(len(e.Data)) + uvarintLen(uint64(len(e.Metadata))) + str(len(e.ID))
		for _, t := range e.Tags {
			n += str(len(t))
		}
		for k, v := range e.Metadata {
			n += str(len(k)) + str(len(v))
		}
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func frameChecksum(frame []byte) uint64 {
	d := xxhash.New()
	_, _ = d.Write(frame[:5])
	_, _ = d.Write(frame[frameHeaderSize:])
	return d.Sum64()
}

// checkFrame verifies a frame's version, length and checksum and returns its
// payload. The error says what does not hold; callers add where.
func checkFrame(frame []byte) ([]byte, error) {
	if len(frame) < frameHeaderSize {
		return nil, fmt.Errorf("frame of %d bytes is shorter than its %d-byte header", len(frame), frameHeaderSize)
	}
	if frame[0] < formatV1 || frame[0] > formatV3 {
		return nil, fmt.Errorf("unknown format version %d", frame[0])
	}
	if n := binary.LittleEndian.Uint32(frame[1:5]); int(n) != len(frame)-frameHeaderSize {
		return nil, fmt.Errorf("payload length %d does not match frame length %d", n, len(frame))
	}
	if want, got := binary.LittleEndian.Uint64(frame[5:13]), frameChecksum(frame); want != got {
		return nil, fmt.Errorf("checksum mismatch (stored %016x, computed %016x)", want, got)
	}
	return frame[frameHeaderSize:], nil
}

// DecodeFrame verifies a frame and decodes its record. Damaged bytes give an
// error wrapping ErrCorrupt, never a panic or a partial record.
func DecodeFrame(frame []byte) (Record, error) {
	payload, err := checkFrame(frame)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	r, err := decodePayload(frame[0], payload, true)
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r, nil
}

type payloadDecoder struct {
	b   []byte
	err error
}

func (d *payloadDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad uvarint in payload")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a element count, bounded by the bytes left (every element takes
// at least one byte), so damage cannot ask for a huge allocation.
func (d *payloadDecoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("count %d exceeds the %d bytes left", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *payloadDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// alias returns the next string, sharing its bytes with the decoded buffer
// (see decodeBody).
func (d *payloadDecoder) alias() string {
	b := d.bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (d *payloadDecoder) skip() { d.bytes() }

// skipEvent skips one event body: type, tags, data, metadata.
func (d *payloadDecoder) skipEvent() {
	d.skip()              // type
	for range d.count() { // tags
		d.skip()
	}
	d.skip()              // data
	for range d.count() { // metadata
		d.skip()
		d.skip()
	}
}

// header reads a payload's first position, timestamp and event count, and
// checks that the record holds events from a real position on.
func (d *payloadDecoder) header() (first uint64, ts time.Time, count int) {
	first = d.uvarint()
	if d.err == nil && len(d.b) < 8 {
		d.err = errors.New("payload too short for timestamp")
	}
	if d.err != nil {
		return 0, time.Time{}, 0
	}
	ts = time.Unix(0, int64(binary.LittleEndian.Uint64(d.b))).UTC()
	d.b = d.b[8:]
	count = d.count()
	if d.err == nil && count == 0 {
		d.err = errors.New("record holds no events")
	}
	if d.err == nil && first == 0 {
		d.err = errors.New("record starts at position 0")
	}
	return first, ts, count
}

// decodePayload decodes a verified payload of the given version; with
// entries, it checks every entry's own checksum too (version 2 and 3: a
// writer's mistake the frame checksum cannot show).
func decodePayload(version byte, p []byte, entries bool) (Record, error) {
	h, err := parseHeader(version, p)
	if err != nil {
		return Record{}, err
	}
	if entries && h.hasEntries() {
		for i := range h.events {
			if err := checkEntry(h.first+uint64(i), h.entry(i)); err != nil {
				return Record{}, fmt.Errorf("event %d: %w", i, err)
			}
		}
	}
	r := Record{FirstPosition: h.first, Events: make([]dcb.Event, len(h.events))}
	for i := range r.Events {
		var lost bool
		if r.Events[i], lost, err = h.event(i); err != nil {
			return Record{}, err
		}
		if lost {
			if r.Lost == nil {
				r.Lost = make([]bool, len(r.Events))
			}
			r.Lost[i] = true
		}
	}
	return r, nil
}

// recordHeader is a payload parsed down to where each event starts, without
// decoding any: an event is then decoded alone.
type recordHeader struct {
	first   uint64
	version byte
	stamp   time.Time // version 1: the timestamp of every event
	events  []int     // payload offset of each event's body
	payload []byte
}

// hasEntries reports whether each event has an entry of its own, with its
// checksum and timestamp (versions 2 and 3).
func (h *recordHeader) hasEntries() bool { return h.version >= formatV2 }

// end returns the payload offset where event i's bytes end.
func (h *recordHeader) end(i int) int {
	if i+1 < len(h.events) {
		return h.events[i+1] - entryHeaderSize(h.version)
	}
	return len(h.payload)
}

// entry returns the entry of event i (versions 2 and 3).
func (h *recordHeader) entry(i int) []byte {
	return h.payload[h.events[i]-entryHeaderSize(h.version) : h.end(i)]
}

// parseHeader reads a payload's header and finds where each event starts,
// checking that the events add up exactly to the payload.
func parseHeader(version byte, p []byte) (recordHeader, error) {
	if version != formatV1 {
		return parseHeaderV2(version, p)
	}
	d := payloadDecoder{b: p}
	h := recordHeader{version: version}
	var n int
	h.first, h.stamp, n = d.header()
	if d.err != nil {
		return h, d.err
	}
	h.events = make([]int, n)
	for i := range h.events {
		h.events[i] = len(p) - len(d.b)
		d.skipEvent()
		if d.err != nil {
			return h, fmt.Errorf("event %d: %w", i, d.err)
		}
	}
	if len(d.b) != 0 {
		return h, fmt.Errorf("%d trailing bytes after the last event", len(d.b))
	}
	h.payload = p
	return h, nil
}

// parseHeaderV2 reads a version 2 or 3 payload's header and offset table.
func parseHeaderV2(version byte, p []byte) (recordHeader, error) {
	h := recordHeader{version: version}
	first, n, err := v2Header(p)
	if err != nil {
		return h, err
	}
	hs := entryHeaderSize(version)
	h.first, h.payload = first, p
	h.events = make([]int, n)
	start := v2PayloadHeader + 4*n
	for i := range h.events {
		end := int(binary.LittleEndian.Uint32(p[v2PayloadHeader+4*i:]))
		if end < start+hs || end > len(p) {
			return h, fmt.Errorf("event %d: entry [%d,%d) out of place in a %d-byte payload", i, start, end, len(p))
		}
		h.events[i] = start + hs
		start = end
	}
	if start != len(p) {
		return h, fmt.Errorf("%d trailing bytes after the last event", len(p)-start)
	}
	return h, nil
}

// v2Header reads a version 2 or 3 payload's first position and event count,
// checking that its offset table fits (counting the smaller, version 2,
// entry header).
func v2Header(p []byte) (first uint64, n int, err error) {
	if len(p) < v2PayloadHeader {
		return 0, 0, fmt.Errorf("payload of %d bytes is shorter than its header", len(p))
	}
	first, count := binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint32(p[8:])
	switch {
	case first == 0:
		return 0, 0, errors.New("record starts at position 0")
	case count == 0:
		return 0, 0, errors.New("record holds no events")
	case uint64(count) > uint64(len(p)-v2PayloadHeader)/(4+v2EntryHeader):
		return 0, 0, fmt.Errorf("count %d exceeds what %d bytes hold", count, len(p))
	}
	return first, int(count), nil
}

// checkEntry verifies an entry (checksum, timestamp, flags, body) against
// its own checksum, given the event's position.
func checkEntry(pos uint64, entry []byte) error {
	if len(entry) < v2EntryHeader {
		return fmt.Errorf("entry of %d bytes is shorter than its header", len(entry))
	}
	if want, got := binary.LittleEndian.Uint64(entry), entryChecksum(pos, entry[8:]); want != got {
		return fmt.Errorf("checksum mismatch of the event at position %d (stored %016x, computed %016x)", pos, want, got)
	}
	return nil
}

// decodeEntry decodes a verified entry of a version 2 or 3 frame into the
// event at pos. The event keeps entry: its strings and data alias it, so
// the caller hands entry over and never changes it.
func decodeEntry(version byte, pos uint64, entry []byte) (dcb.SequencedEvent, error) {
	e, lost, err := decodeEntryEvent(version, entry)
	if err != nil {
		return dcb.SequencedEvent{}, fmt.Errorf("event at position %d: %w", pos, err)
	}
	return dcb.SequencedEvent{Event: e, Position: pos, Lost: lost}, nil
}

// decodeEntryEvent decodes a verified entry of a version 2 or 3 frame, and
// whether it is a lost marker; the event keeps entry (see decodeEntry). A
// marker that carries more than a type and tags, or a timestamp, is damage,
// as is a flag this version does not know.
func decodeEntryEvent(version byte, entry []byte) (dcb.Event, bool, error) {
	hs := entryHeaderSize(version)
	if len(entry) < hs {
		return dcb.Event{}, false, fmt.Errorf("entry of %d bytes is shorter than its header", len(entry))
	}
	lost := false
	if version == formatV3 {
		switch flags := entry[v2EntryHeader]; flags {
		case 0:
		case flagLost:
			lost = true
		default:
			return dcb.Event{}, false, fmt.Errorf("unknown entry flags %#02x", flags)
		}
	}
	e, rest, err := decodeBody(entry[hs:])
	if err == nil && version == formatV3 {
		d := payloadDecoder{b: rest}
		e.ID = d.alias()
		rest, err = d.b, d.err
	}
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d trailing bytes after the event", len(rest))
	}
	ts := binary.LittleEndian.Uint64(entry[8:])
	if err == nil && lost && (len(e.Data) > 0 || len(e.Metadata) > 0 || e.ID != "" || ts != 0) {
		err = errors.New("a lost marker carries data, metadata, an ID or a timestamp")
	}
	if err != nil {
		return dcb.Event{}, false, err
	}
	if !lost {
		e.Timestamp = time.Unix(0, int64(ts)).UTC()
	}
	return e, lost, nil
}

// event decodes event i of the record, and whether it is a lost marker.
// Its strings and data are its own, copied out of the payload in one
// allocation.
func (h *recordHeader) event(i int) (dcb.Event, bool, error) {
	var e dcb.Event
	var lost bool
	var err error
	if h.hasEntries() {
		e, lost, err = decodeEntryEvent(h.version, bytes.Clone(h.entry(i)))
	} else {
		e, _, err = decodeEvent(h.payload[h.events[i]:])
		e.Timestamp = h.stamp
	}
	if err != nil {
		return dcb.Event{}, false, fmt.Errorf("event %d: %w", i, err)
	}
	return e, lost, nil
}

// decodeEvent decodes one event body from the start of b and returns the
// bytes after it. The event's strings and data are copied out of b, all in
// one allocation.
func decodeEvent(b []byte) (dcb.Event, []byte, error) {
	d := payloadDecoder{b: b}
	d.skipEvent()
	if d.err != nil {
		return dcb.Event{}, nil, d.err
	}
	n := len(b) - len(d.b)
	e, _, err := decodeBody(bytes.Clone(b[:n]))
	return e, b[n:], err
}

// decodeBody decodes one event body from the start of b and returns the
// bytes after it. The event keeps b: its strings and data alias it (one
// allocation for the whole event instead of one per string), so the caller
// hands b over and never changes it. Data is capped at its length: an append
// to it copies.
func decodeBody(b []byte) (dcb.Event, []byte, error) {
	d := payloadDecoder{b: b}
	var e dcb.Event
	e.Type = d.alias()
	if nt := d.count(); nt > 0 {
		e.Tags = make([]string, nt)
		for j := range e.Tags {
			e.Tags[j] = d.alias()
		}
	}
	if data := d.bytes(); len(data) > 0 {
		e.Data = data
	}
	if nm := d.count(); nm > 0 {
		e.Metadata = make(map[string]string, nm)
		for range nm {
			k := d.alias()
			e.Metadata[k] = d.alias()
		}
	}
	if d.err != nil {
		return dcb.Event{}, nil, d.err
	}
	return e, d.b, nil
}
