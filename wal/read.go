package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/dcb"
)

// locate returns the location of the record holding pos.
func (l *Log) locate(pos uint64) (recordLoc, *segment, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, loc, seg, err := l.locateLocked(pos)
	return loc, seg, err
}

// locateLocked is locate, also returning the record's index, for a caller
// holding l.mu read-locked.
func (l *Log) locateLocked(pos uint64) (int, recordLoc, *segment, error) {
	if l.readsClosed {
		return 0, recordLoc{}, nil, ErrClosed
	}
	i := l.locIndex.find(l.locs, pos)
	if pos == 0 || i == len(l.locs) {
		return 0, recordLoc{}, nil, fmt.Errorf("%w: %d", ErrNotFound, pos)
	}
	loc := l.locs[i]
	return i, loc, l.segs[loc.seg], nil
}

// maps reports whether l reads its segments through memory mappings.
func (l *Log) maps() bool { return canMap && !l.pread }

// ReadRecord returns the record holding position pos, verified against its
// checksum.
func (l *Log) ReadRecord(pos uint64) (Record, error) {
	return l.NewReader().Record(pos)
}

// Reader reads records and events for one goroutine.
//
// Events (Event) of version 2 and 3 records are read alone: the two offsets
// bounding the event's entry and the entry, copied out of the segment's
// memory mapping (no syscall) into memory the event then owns, verified
// against the entry's own checksum, decoded in place. Where segments are not
// mapped, scattered events are read so with two positional reads, while a
// run of adjacent events reads their records whole, as Record does.
//
// Records (Record, and events of version 1 records) are read whole with
// positional reads: in order, reading ahead in growing chunks (a full scan
// costs one read per megabyte); scattered, each one exactly. It keeps the
// last record's verified frame, so the events of one record cost one read and
// one checksum. The zero Reader is not usable; see NewReader.
type Reader struct {
	l        *Log
	cur      recordLoc // the record whose frame is held
	have     bool
	frameHdr recordHeader
	rec      *Record // the decoded record, once asked for
	chunk    []byte  // read-ahead bytes of segment chunkSeg from chunkOff
	chunkSeg uint32
	chunkOff int64
	ahead    int // current read-ahead size; 0 reads records exactly

	last uint64 // the position of the last event asked for
	run  int    // how many events in a row were next to the one before

	// The record of the last event read alone, and its index in the log's
	// records: the next event read alone is looked for there, then next to
	// it, before a search.
	alone    recordLoc
	aloneIdx int
	aloneSeg *segment // nil: none yet
	slot     [8]byte  // scratch for the offsets bounding an entry
	span     []byte   // scratch for a version byte and offsets read together
}

// scanRun is how many events in a row, each next to the one before, make a
// Reader read whole records (with read-ahead) instead of events alone, where
// segments are read with positional reads.
const scanRun = 16

// NewReader returns a Reader of l.
func (l *Log) NewReader() *Reader { return &Reader{l: l} }

const (
	minReadAhead = 64 << 10
	maxReadAhead = 1 << 20
)

// Event returns the event at position pos, verified against its checksum.
// Its strings and data are its own (one allocation for all of them), shared
// with nothing, except when pos is in the record this Reader's Record
// returned last: the event is then that record's, not to be modified.
func (r *Reader) Event(pos uint64) (dcb.SequencedEvent, error) {
	if r.last != 0 && (pos == r.last+1 || pos+1 == r.last) {
		r.run++
	} else {
		r.run = 0
	}
	r.last = pos
	if !r.holds(pos) {
		l := r.l
		l.mu.RLock()
		i, loc, seg, err := r.locateLocked(pos)
		if err == nil && r.readsAlone(loc) {
			r.alone, r.aloneIdx, r.aloneSeg = loc, i, seg
			version, entry, err := r.readEntryGuarded(loc, seg, pos)
			if err != nil || version != formatV1 {
				l.mu.RUnlock()
				if err != nil {
					return dcb.SequencedEvent{}, err
				}
				return eventAlone(version, loc, seg, pos, entry)
			}
			// A version 1 record has no entries: it is read whole.
		}
		l.mu.RUnlock()
		if err != nil {
			return dcb.SequencedEvent{}, err
		}
		if err := r.loadAt(loc, seg); err != nil {
			return dcb.SequencedEvent{}, err
		}
	}
	if r.rec != nil {
		return r.rec.Event(pos), nil
	}
	e, lost, err := r.frameHdr.event(int(pos - r.cur.firstPos))
	if err != nil {
		return dcb.SequencedEvent{}, r.corrupt(err)
	}
	return dcb.SequencedEvent{Event: e, Position: pos, Lost: lost}, nil
}

// locateLocked finds the record holding pos as Log.locateLocked does,
// looking first at the record of the last event read alone and its
// neighbours (the next record of a scan). The caller holds l.mu read-locked.
func (r *Reader) locateLocked(pos uint64) (int, recordLoc, *segment, error) {
	l := r.l
	if r.aloneSeg != nil && !l.readsClosed {
		i := r.aloneIdx
		switch {
		case pos >= r.alone.firstPos && pos <= r.alone.lastPos():
			return i, r.alone, r.aloneSeg, nil
		case pos == r.alone.lastPos()+1 && i+1 < len(l.locs):
			i++
		case pos+1 == r.alone.firstPos && i > 0:
			i--
		default:
			i = -1
		}
		if i >= 0 && pos >= l.locs[i].firstPos && pos <= l.locs[i].lastPos() {
			return i, l.locs[i], l.segs[l.locs[i].seg], nil
		}
	}
	return l.locateLocked(pos)
}

// readsAlone reports whether the event of record loc is read alone, not with
// its whole record: the reads are not a scan (which reads records whole: one
// copy or read and one checksum per record), and, with positional reads, the
// record holds other events (a record of one event is one read either way).
// With mapped segments a record of one event is read alone even in a scan:
// it costs less than a frame. A version 1 record, which has no entries, is
// read whole all the same (readEntry finds its version).
func (r *Reader) readsAlone(loc recordLoc) bool {
	if r.l.maps() {
		return r.run < scanRun || loc.count == 1
	}
	return r.run < scanRun && loc.count > 1
}

// eventAlone verifies entry, the copy readEntry made of the entry of the
// event at pos in record loc, against its own checksum and decodes it. An
// event is so read alone, without the record's other events: the two
// offsets bounding its entry, then the entry (under the log's read lock),
// then this (after it).
func eventAlone(version byte, loc recordLoc, seg *segment, pos uint64, entry []byte) (dcb.SequencedEvent, error) {
	if err := checkEntry(pos, entry); err != nil {
		return dcb.SequencedEvent{}, entryCorrupt(loc, seg, err)
	}
	e, err := decodeEntry(version, pos, entry)
	if err != nil {
		return dcb.SequencedEvent{}, entryCorrupt(loc, seg, err)
	}
	return e, nil
}

func entryCorrupt(loc recordLoc, seg *segment, err error) error {
	return fmt.Errorf("%w: %v (segment %s offset %d)", ErrCorrupt, err, filepath.Base(seg.path), loc.off)
}

// readEntry returns the version of record loc, read from its frame, and,
// unless it is version 1 (no entries: the record is read whole), a copy of
// the entry of the event at pos, not yet verified. The version is the
// frame's own, not inferred from the record's place: a repair rewrites a
// damaged record of an older version as version 3 (lost markers need its
// flags), so versions need not come in order. The event keeps the copy: its
// strings and data alias it. The caller holds the log's mu read-locked.
func (r *Reader) readEntry(loc recordLoc, seg *segment, pos uint64) (byte, []byte, error) {
	if r.l.readsClosed {
		return 0, nil, ErrClosed
	}
	i := int64(pos - loc.firstPos)
	payload, payloadLen := int64(loc.off)+frameHeaderSize, int64(loc.size)-frameHeaderSize
	entries := int64(v2PayloadHeader) + 4*int64(loc.count) // where the first entry starts
	// The offsets bounding the entry: for i = 0 only its end.
	at, bounds := payload+v2PayloadHeader, r.slot[:4]
	if i > 0 {
		at, bounds = payload+v2PayloadHeader+4*(i-1), r.slot[:8]
	}
	version, err := r.readVersionAnd(seg, int64(loc.off), bounds, at)
	if err != nil || version == formatV1 {
		return version, nil, err
	}
	if version != formatV2 && version != formatV3 {
		return 0, nil, entryCorrupt(loc, seg, fmt.Errorf("unknown format version %d", version))
	}
	var start, end int64
	if i == 0 {
		start, end = entries, int64(binary.LittleEndian.Uint32(bounds))
	} else {
		start, end = int64(binary.LittleEndian.Uint32(bounds)), int64(binary.LittleEndian.Uint32(bounds[4:]))
	}
	if start < entries || end < start+int64(entryHeaderSize(version)) || end > payloadLen || end-start > MaxRecordSize {
		return 0, nil, entryCorrupt(loc, seg, fmt.Errorf("entry of position %d at [%d,%d) out of place in a %d-byte payload", pos, start, end, payloadLen))
	}
	entry := make([]byte, end-start)
	if err := r.readAt(seg, entry, payload+start); err != nil {
		return 0, nil, err
	}
	return version, entry, nil
}

// maxVersionSpan is how far apart a frame's version byte and the offsets
// an event read alone needs may lie for positional reads to take both in
// one read (records of up to about a thousand events).
const maxVersionSpan = 4 << 10

// readVersionAnd reads the version byte of the frame at off and fills b
// with the bytes at at (after off, in the same frame): with a mapping two
// copies, with positional reads one read when they lie close together. The
// caller holds the log's mu read-locked, as for readAt.
func (r *Reader) readVersionAnd(seg *segment, off int64, b []byte, at int64) (byte, error) {
	span := at + int64(len(b)) - off
	if r.l.maps() || span > maxVersionSpan {
		var v [1]byte
		if err := r.readAt(seg, v[:], off); err != nil {
			return 0, err
		}
		return v[0], r.readAt(seg, b, at)
	}
	if cap(r.span) < int(span) {
		r.span = make([]byte, maxVersionSpan)
	}
	buf := r.span[:span]
	if err := r.readAt(seg, buf, off); err != nil {
		return 0, err
	}
	copy(b, buf[at-off:])
	return buf[0], nil
}

// readAt fills b with the bytes of seg at off: copied from its mapping, or
// read from its file. The caller holds the log's mu read-locked, runs under
// readEntryGuarded, and the bytes were written (they belong to a published
// record).
func (r *Reader) readAt(seg *segment, b []byte, off int64) error {
	if r.l.maps() {
		if m := seg.view(off, len(b), r.l.segmentSize); m != nil {
			copy(b, m) // a fault here is caught by readEntryGuarded
			return nil
		}
	}
	f, err := seg.file()
	if err != nil {
		return fmt.Errorf("wal: open segment: %w", err)
	}
	if n, err := f.ReadAt(b, off); n < len(b) {
		return fmt.Errorf("wal: read segment %s offset %d: %w", filepath.Base(seg.path), off, closedAs(err))
	}
	return nil
}

// closedAs returns ErrClosed for the error of a read from a segment file the
// log's Close closed, err otherwise.
func closedAs(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Record returns the record holding position pos. The caller must not
// modify it.
func (r *Reader) Record(pos uint64) (Record, error) {
	if err := r.load(pos); err != nil {
		return Record{}, err
	}
	if r.rec == nil {
		rec := Record{FirstPosition: r.cur.firstPos, Events: make([]dcb.Event, r.cur.count)}
		for i := range rec.Events {
			e, lost, err := r.frameHdr.event(i)
			if err != nil {
				return Record{}, r.corrupt(err)
			}
			rec.Events[i] = e
			if lost {
				if rec.Lost == nil {
					rec.Lost = make([]bool, len(rec.Events))
				}
				rec.Lost[i] = true
			}
		}
		r.rec = &rec
	}
	return *r.rec, nil
}

func (r *Reader) corrupt(err error) error {
	return fmt.Errorf("%w: %v (segment %s offset %d)", ErrCorrupt, err, segmentName(r.l.segmentFirst(r.cur.seg)), r.cur.off)
}

// load makes the record holding pos the held one, reading and verifying it
// unless it already is.
func (r *Reader) load(pos uint64) error {
	if r.holds(pos) {
		return nil
	}
	loc, seg, err := r.l.locate(pos)
	if err != nil {
		return err
	}
	return r.loadAt(loc, seg)
}

// holds reports whether the held record holds pos.
func (r *Reader) holds(pos uint64) bool {
	return r.have && pos >= r.cur.firstPos && pos <= r.cur.lastPos()
}

// loadAt makes the record at loc the held one, reading and verifying it.
func (r *Reader) loadAt(loc recordLoc, seg *segment) error {
	sequential := r.have && loc.seg == r.cur.seg && loc.off == r.cur.off+r.cur.size+uint32(uvarintLen(uint64(loc.size)))
	switch {
	case !sequential:
		r.ahead = 0
	case r.ahead == 0:
		r.ahead = minReadAhead
	case r.ahead < maxReadAhead:
		r.ahead *= 2
	}
	r.have, r.rec = false, nil
	frame, err := r.frame(loc, seg)
	if err != nil {
		return err
	}
	where := func(err error) error {
		return fmt.Errorf("%w: %v (segment %s offset %d)", ErrCorrupt, err, filepath.Base(seg.path), loc.off)
	}
	payload, err := checkFrame(frame)
	if err != nil {
		return where(err)
	}
	h, err := parseHeader(frame[0], payload)
	if err != nil {
		return where(err)
	}
	if h.first != loc.firstPos || len(h.events) != int(loc.count) {
		return fmt.Errorf("%w: record at segment %s offset %d holds positions %d..%d, expected %d..%d",
			ErrCorrupt, filepath.Base(seg.path), loc.off, h.first, h.first+uint64(len(h.events))-1, loc.firstPos, loc.lastPos())
	}
	r.cur, r.frameHdr, r.have = loc, h, true
	return nil
}

// frame returns the frame at loc. It stays valid until the next call.
func (r *Reader) frame(loc recordLoc, seg *segment) ([]byte, error) {
	off, end := int64(loc.off), int64(loc.off)+int64(loc.size)
	if loc.seg == r.chunkSeg && off >= r.chunkOff && end <= r.chunkOff+int64(len(r.chunk)) {
		return r.chunk[off-r.chunkOff : end-r.chunkOff], nil
	}
	if r.l.maps() {
		// A copy out of the mapping: no read-ahead to keep.
		if cap(r.chunk) < int(loc.size) {
			r.chunk = make([]byte, loc.size)
		}
		frame := r.chunk[:loc.size]
		r.chunk = r.chunk[:0]
		if mapped, err := r.l.copyMapped(seg, frame, off); mapped {
			return frame, err
		}
	}
	f, err := seg.file()
	if err != nil {
		return nil, fmt.Errorf("wal: open segment: %w", err)
	}
	n := max(int(loc.size), r.ahead)
	if cap(r.chunk) < n {
		r.chunk = make([]byte, n)
	}
	r.chunk = r.chunk[:n]
	got, err := f.ReadAt(r.chunk, off)
	if got < int(loc.size) {
		r.chunk = r.chunk[:0]
		return nil, fmt.Errorf("wal: read segment %s offset %d: %w", filepath.Base(seg.path), off, closedAs(err))
	}
	r.chunk, r.chunkSeg, r.chunkOff = r.chunk[:got], loc.seg, off
	frame := r.chunk[:loc.size]
	if r.ahead == 0 {
		// An exact read is not kept as read-ahead; its bytes stay valid
		// until the next read.
		r.chunk = r.chunk[:0]
	}
	return frame, nil
}

func (l *Log) segmentFirst(seg uint32) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[seg].first
}
