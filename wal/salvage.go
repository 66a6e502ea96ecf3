package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/cespare/xxhash/v2"
	"github.com/possumstore/possum/dcb"
)

// Salvaging one damaged record: keep every event whose entry verifies its
// own checksum, repair the others from another copy where that copy
// verifies against the stored checksum (the entry's, or the frame's over the
// whole record), and keep the position of the rest with a lost marker.

// entryState is what became of one event of a damaged record.
type entryState uint8

const (
	entryLost     entryState = iota
	entryKept                // its stored entry verifies its own checksum
	entryRepaired            // another copy verifies against a stored checksum
)

// entrySalvage is one event of a record being salvaged.
type entrySalvage struct {
	state entryState
	bytes []byte // kept or repaired: the entry, as its record's version holds it
	// For a lost event, what the frame checksum may still vouch for (see
	// witness): the other copy re-encoded, and the stored bytes with their
	// checksum recomputed. nil: none.
	fromCopy, fromStored []byte
	copied               *dcb.Event // what the other copy holds, if anything
	asked                bool       // the other copy was asked for
}

// ask asks the other copy for the event at pos, once.
func (e *entrySalvage) ask(s *salvager, pos uint64) *dcb.Event {
	if !e.asked {
		e.asked = true
		if c, ok := s.copyOf(pos); ok {
			e.copied = &c
		}
	}
	return e.copied
}

// salvager rebuilds damaged records with what RepairOptions supply.
type salvager struct {
	opts RepairOptions
}

// copyOf returns the other copy's event at pos, if any.
func (s *salvager) copyOf(pos uint64) (dcb.Event, bool) {
	if s.opts.Copy == nil {
		return dcb.Event{}, false
	}
	return s.opts.Copy(pos)
}

// marker returns the lost marker of the event at pos: the type and tags of
// its other copy if it has one (verified or not), else those something else
// still knows, else none (unknown).
func (s *salvager) marker(pos uint64, copied *dcb.Event) dcb.Event {
	if copied != nil {
		return dcb.Event{Type: copied.Type, Tags: copied.Tags}.Normalized()
	}
	if s.opts.Known != nil {
		if typ, tags, ok := s.opts.Known(pos); ok {
			return dcb.Event{Type: typ, Tags: tags}.Normalized()
		}
	}
	return dcb.Event{}
}

// record salvages the record holding positions first..last whose tidwall
// entry (length prefix and frame) is b, nil when its bytes are gone (a
// missing segment). guess is the version to read it as when its version
// byte is damaged (0: the current). It returns the frame to write, and
// whether the record was intact after all (its frame verifies whole: a
// record the offsets file told apart inside a damaged region). rr gets
// what became of each event.
func (s *salvager) record(b []byte, first, last uint64, guess byte, rr *RecordRepair) (frame []byte, intact bool, err error) {
	n := int(last - first + 1)
	rr.First, rr.Last = first, last
	stored := stripPrefix(b)
	if stored != nil {
		if payload, err := checkFrame(stored); err != nil {
			rr.Reason = err.Error()
		} else if r, err := decodePayload(stored[0], payload, true); err != nil {
			rr.Reason = err.Error()
		} else if r.FirstPosition != first || len(r.Events) != n {
			rr.Reason = fmt.Sprintf("record holds positions %d..%d, expected %d..%d", r.FirstPosition, r.LastPosition(), first, last)
		} else {
			rr.Kept = uint64(n)
			return stored, true, nil
		}
	} else {
		rr.Reason = "its bytes are gone"
	}
	version := guess
	if len(stored) > 0 && stored[0] >= formatV1 && stored[0] <= formatV3 {
		version = stored[0]
	}
	if version == 0 {
		version = FormatVersion
	}
	es := make([]entrySalvage, n)
	switch {
	case stored == nil:
		rr.Whole = true
	case version == formatV1:
		rr.Whole = true
		if frame, ok := s.v1(stored, first, es); ok {
			rr.Repaired = appendRange(rr.Repaired, first, last)
			return frame, false, nil
		}
	default:
		rr.Whole = !s.entries(version, stored, first, es)
		s.witness(version, stored, first, es)
	}
	return s.rebuild(version, first, es, rr)
}

// stripPrefix returns the frame of the tidwall entry b: b after its uvarint
// length, when that length holds, else after the length prefix that an
// entry of len(b) bytes has. nil when b is.
func stripPrefix(b []byte) []byte {
	if b == nil {
		return nil
	}
	if size, un := binary.Uvarint(b); un > 0 && uint64(len(b)-un) == size {
		return b[un:]
	}
	for l := 1; l <= binary.MaxVarintLen32 && l < len(b); l++ {
		if uvarintLen(uint64(len(b)-l)) == l {
			return b[l:]
		}
	}
	return b[min(1, len(b)):]
}

// entries walks the entries of a version 2 or 3 frame whose frame checks
// fail, given the record's positions (len(es) events from first): each
// entry that verifies its own checksum is kept; one that does not is looked
// for again where its checksum holds (the offset table may be what is
// damaged), then repaired from the other copy when that copy's entry has
// the stored checksum. Where the walk loses track of where entries start
// (an entry and the offset table both damaged), it looks for the next
// entry that verifies (resync). It reports whether the payload could be
// walked at all (false: its header and offset table do not fit; every
// event was repaired from its copy or lost).
func (s *salvager) entries(version byte, frame []byte, first uint64, es []entrySalvage) bool {
	var p []byte
	if len(frame) >= frameHeaderSize {
		p = frame[frameHeaderSize:]
	}
	n := len(es)
	hs := entryHeaderSize(version)
	entriesAt := v2PayloadHeader + 4*n // where entry 0 starts
	if entriesAt > len(p) {
		for i := range es {
			es[i].fromCopy = copyEntry(s, version, first+uint64(i), &es[i])
		}
		return false
	}
	plausible := func(end, at int) bool { return at >= entriesAt && end >= at+hs && end <= len(p) }
	tableEnd := func(i int) int {
		if i >= n {
			return -1
		}
		return int(binary.LittleEndian.Uint32(p[v2PayloadHeader+4*i:]))
	}
	rs := resync{version: version, p: p, first: first, n: n, budget: resyncBudget}
	// at: where entry i starts, -1 when not known; sure: at is the end of
	// an entry that verified (or the first entry's start), not an offset
	// table's word; base, baseIndex: the last sure place, and the entry
	// starting there.
	at, sure := entriesAt, true
	rs.base, rs.baseIndex, rs.lo = entriesAt, 0, entriesAt
	for i := 0; i < n; i++ {
		pos, e := first+uint64(i), &es[i]
		end := tableEnd(i)
		found := -1 // where entry i ends, if it verifies at at
		if at >= 0 {
			if plausible(end, at) && entryVerifies(version, pos, p[at:end]) {
				found = end
			} else {
				// The offset table may be what is damaged: look for the
				// end at which the entry's own checksum holds, before the
				// next entry's end where that one is plausible.
				limit := len(p)
				if next := tableEnd(i + 1); plausible(next, at) {
					limit = next
				}
				if x, ok := findEntryEnd(version, pos, p, at, limit); ok {
					found = x
				}
			}
			if found < 0 {
				if enc := copyEntry(s, version, pos, e); enc != nil && at+8 <= len(p) && bytes.Equal(p[at:at+8], enc[:8]) {
					e.state, e.bytes = entryRepaired, enc
					at, sure = at+len(enc), true
					rs.base, rs.baseIndex, rs.lo = at, i+1, at
					continue
				}
			}
		}
		if found < 0 && !sure {
			// Where this entry starts is a guess that failed: look for
			// the next entry that verifies, this one or a later one.
			if j, from, to, ok := rs.next(i); ok {
				for k := i; k < j; k++ {
					es[k].fromCopy = copyEntry(s, version, first+uint64(k), &es[k])
				}
				i, e, at, found = j, &es[j], from, to
			}
		}
		if found >= 0 {
			e.state, e.bytes = entryKept, p[at:found]
			at, sure = found, true
			rs.base, rs.baseIndex, rs.lo = at, i+1, at
			continue
		}
		// Lost, for now: what the frame checksum may still vouch for.
		e.fromCopy = copyEntry(s, version, pos, e)
		if at >= 0 && plausible(end, at) {
			e.fromStored = bytes.Clone(p[at:end])
			binary.LittleEndian.PutUint64(e.fromStored, entryChecksum(pos, e.fromStored[8:]))
		}
		if at >= 0 && sure {
			rs.lo = max(rs.lo, at+minEntrySize(version)) // the next entry starts after this one
		}
		// The next entry starts where the table says this one ends, if
		// that can be; a guess.
		at, sure = -1, false
		if end >= rs.lo && end <= len(p) {
			at = end
		}
	}
	return true
}

// copyEntry returns the entry of the event at pos re-encoded from its other
// copy, as a frame of version holds it; nil when there is no copy.
func copyEntry(s *salvager, version byte, pos uint64, e *entrySalvage) []byte {
	if e.fromCopy != nil {
		return e.fromCopy
	}
	c := e.ask(s, pos)
	if c == nil {
		return nil
	}
	return appendEntryAs(nil, version, pos, *c)
}

// resyncWindow bounds how far past the last place it knew a resync looks
// for the next entry at a time; resyncSkip how many damaged entries in a
// row it tries past where the offset table no longer says (a 4 KiB page of
// small entries); resyncBudget bounds the checksums one damaged record may
// spend on it.
const (
	resyncWindow = 64 << 10
	resyncSkip   = 64
	resyncBudget = 1 << 20
)

// resync finds entries again in a payload where the walk lost track of
// where they start: at each offset, an entry whose shape holds (timestamp,
// flags, body, ID up to an end) and whose checksum holds for one of the
// events that can start there.
type resync struct {
	version   byte
	p         []byte
	first     uint64
	n         int
	base      int // the last place an entry was known to start
	baseIndex int // the entry that starts at base
	lo        int // where to look from: nothing verifies before it
	budget    int // checksums left
}

// next returns the first entry at or after r.lo, within resyncWindow, that
// verifies as one of the entries i..n-1, and its bounds. Entry j cannot
// start before base plus the smallest sizes of the entries between.
func (r *resync) next(i int) (j, from, to int, ok bool) {
	least := minEntrySize(r.version)
	limit := min(len(r.p), max(r.lo, r.base)+resyncWindow)
	for at := max(r.lo, r.base); at+least <= limit && r.budget > 0; at++ {
		if binary.LittleEndian.Uint64(r.p[at:]) == 0 {
			continue // a zeroed checksum is damage, not an entry
		}
		end, ok := entryShape(r.version, r.p, at)
		if !ok {
			continue
		}
		// The entry the offset table says starts here, where it still
		// does; then the first few that can.
		lowest, most := max(i, r.baseIndex), min(r.n-1, r.baseIndex+(at-r.base)/least)
		if j := r.startingAt(at); j >= lowest && j <= most {
			r.budget--
			if entryVerifies(r.version, r.first+uint64(j), r.p[at:end]) {
				return j, at, end, true
			}
		}
		for j := lowest; j <= min(most, lowest+resyncSkip-1) && r.budget > 0; j++ {
			r.budget--
			if entryVerifies(r.version, r.first+uint64(j), r.p[at:end]) {
				return j, at, end, true
			}
		}
	}
	r.lo = limit // nothing verifies before it: the next look starts there
	return 0, 0, 0, false
}

// startingAt returns the entry the offset table says starts at at (the
// one after the entry it says ends there), -1 when it says none does. The
// table is searched as if it were intact: a damaged table may say none.
func (r *resync) startingAt(at int) int {
	end := func(k int) int { return int(binary.LittleEndian.Uint32(r.p[v2PayloadHeader+4*k:])) }
	k := sort.Search(r.n, func(k int) bool { return end(k) >= at })
	if k < r.n && end(k) == at {
		return k + 1
	}
	return -1
}

// minEntrySize is the size of the smallest entry of a version: its header,
// and a body (and ID) of empty strings and lists.
func minEntrySize(version byte) int {
	if version == formatV3 {
		return v3EntryHeader + 5
	}
	return v2EntryHeader + 4
}

// entryShape returns where an entry starting at p[at] would end, if its
// flags and its body's lengths hold together; nothing is verified.
func entryShape(version byte, p []byte, at int) (int, bool) {
	hs := entryHeaderSize(version)
	if at+hs > len(p) || version == formatV3 && p[at+v2EntryHeader] > flagLost {
		return 0, false
	}
	d := payloadDecoder{b: p[at+hs:]}
	d.skipEvent()
	if version == formatV3 {
		d.skip() // the ID
	}
	if d.err != nil {
		return 0, false
	}
	return len(p) - len(d.b), true
}

// entryVerifies reports whether entry is the event at pos: its checksum
// holds and it decodes.
func entryVerifies(version byte, pos uint64, entry []byte) bool {
	if len(entry) < v2EntryHeader || binary.LittleEndian.Uint64(entry) != entryChecksum(pos, entry[8:]) {
		return false
	}
	_, _, err := decodeEntryEvent(version, entry)
	return err == nil
}

// findEntryEnd looks for the end of the entry of the event at pos that
// starts at p[at], up to limit: the first end at which the entry's own
// checksum holds (and it decodes). The checksum is computed incrementally,
// so the search costs one pass over the bytes.
func findEntryEnd(version byte, pos uint64, p []byte, at, limit int) (int, bool) {
	hs := entryHeaderSize(version)
	if at+hs > limit || limit > len(p) {
		return 0, false
	}
	want := binary.LittleEndian.Uint64(p[at:])
	d := xxhash.New()
	var pb [8]byte
	binary.LittleEndian.PutUint64(pb[:], pos)
	_, _ = d.Write(pb[:])
	_, _ = d.Write(p[at+8 : at+hs])
	for x := at + hs; ; x++ {
		if d.Sum64() == want {
			if _, _, err := decodeEntryEvent(version, p[at:x]); err == nil {
				return x, true
			}
		}
		if x >= limit {
			return 0, false
		}
		_, _ = d.Write(p[x : x+1])
	}
}

// witness tries the frame's own checksum on the record the salvage can
// rebuild: where every lost event has a candidate (its other copy
// re-encoded, or its stored bytes with their checksum recomputed: the
// damage may have hit only the checksum) and the frame rebuilt with them
// has the stored frame checksum, the rebuilt record is the one written,
// and every event is repaired.
func (s *salvager) witness(version byte, frame []byte, first uint64, es []entrySalvage) {
	if len(frame) < frameHeaderSize {
		return
	}
	lost := false
	for _, e := range es {
		lost = lost || e.state == entryLost
	}
	if !lost {
		return
	}
	want := binary.LittleEndian.Uint64(frame[5:13])
	for _, fromCopy := range []bool{true, false} {
		pick := func(e *entrySalvage) []byte {
			switch {
			case e.state != entryLost:
				return e.bytes
			case fromCopy && e.fromCopy != nil:
				return e.fromCopy
			case e.fromStored != nil:
				return e.fromStored
			}
			return e.fromCopy
		}
		whole := true
		for i := range es {
			whole = whole && pick(&es[i]) != nil
		}
		if !whole {
			continue
		}
		f, err := appendFrame(nil, version, first, len(es), func(dst []byte, i int) []byte { return append(dst, pick(&es[i])...) })
		if err != nil || binary.LittleEndian.Uint64(f[5:13]) != want {
			continue
		}
		for i := range es {
			if e := &es[i]; e.state == entryLost {
				e.state, e.bytes = entryRepaired, pick(e)
			}
		}
		return
	}
}

// v1 repairs a damaged version 1 record (whose events have no checksums of
// their own) from the other copy: only whole, when every event has a copy
// and the record they make has the stored frame checksum.
func (s *salvager) v1(frame []byte, first uint64, es []entrySalvage) ([]byte, bool) {
	for i := range es {
		es[i].ask(s, first+uint64(i))
	}
	if len(frame) < frameHeaderSize {
		return nil, false
	}
	var payload []byte
	payload = binary.AppendUvarint(payload, first)
	for i, e := range es {
		if e.copied == nil {
			return nil, false
		}
		if i == 0 {
			payload = binary.LittleEndian.AppendUint64(payload, uint64(e.copied.Timestamp.UnixNano()))
			payload = binary.AppendUvarint(payload, uint64(len(es)))
		}
		payload = appendEventBody(payload, *e.copied)
	}
	f := make([]byte, frameHeaderSize, frameHeaderSize+len(payload))
	f = append(f, payload...)
	f[0] = formatV1
	binary.LittleEndian.PutUint32(f[1:5], uint32(len(payload)))
	binary.LittleEndian.PutUint64(f[5:13], frameChecksum(f))
	if !bytes.Equal(f[5:13], frame[5:13]) {
		return nil, false
	}
	return f, true
}

// rebuild writes the salvaged record: in its own version when no event was
// lost (the bytes the writer wrote), else as version 3 with a lost marker
// for each lost event (markers need its flags; the events kept from a
// version 2 record are re-encoded, their content unchanged). It fills in
// rr's counts.
func (s *salvager) rebuild(version byte, first uint64, es []entrySalvage, rr *RecordRepair) ([]byte, bool, error) {
	lost := false
	for i, e := range es {
		pos := first + uint64(i)
		switch e.state {
		case entryKept:
			rr.Kept++
		case entryRepaired:
			rr.Repaired = appendRange(rr.Repaired, pos, pos)
		default:
			rr.Lost = appendRange(rr.Lost, pos, pos)
			lost = true
		}
	}
	if !lost {
		f, err := appendFrame(nil, version, first, len(es), func(dst []byte, i int) []byte { return append(dst, es[i].bytes...) })
		return f, false, err
	}
	var convErr error
	f, err := appendFrame(nil, FormatVersion, first, len(es), func(dst []byte, i int) []byte {
		pos, e := first+uint64(i), &es[i]
		switch {
		case e.state == entryLost:
			return appendEntry(dst, pos, s.marker(pos, e.ask(s, pos)), 0, true)
		case version == formatV3:
			return append(dst, e.bytes...)
		}
		ev, _, err := decodeEntryEvent(version, e.bytes)
		if err != nil && convErr == nil {
			convErr = fmt.Errorf("wal: repair: re-encode the event at position %d: %w", pos, err)
		}
		return appendEntry(dst, pos, ev, 0, false)
	})
	if err == nil {
		err = convErr
	}
	return f, false, err
}

// markers returns the frame of a record of lost markers at positions
// first..last, each with what is still known of it.
func (s *salvager) markers(first, last uint64) ([]byte, error) {
	n := int(last - first + 1)
	return appendFrame(nil, FormatVersion, first, n, func(dst []byte, i int) []byte {
		pos := first + uint64(i)
		var e entrySalvage
		return appendEntry(dst, pos, s.marker(pos, e.ask(s, pos)), 0, true)
	})
}

// appendRange adds positions from..to to ranges, merging with the last
// range where they follow it.
func appendRange(ranges []PositionRange, from, to uint64) []PositionRange {
	if n := len(ranges); n > 0 && ranges[n-1].To+1 == from {
		ranges[n-1].To = to
		return ranges
	}
	return append(ranges, PositionRange{From: from, To: to})
}
