package wal

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// The survey of a repair: one pass over the segments, a segment at a time,
// that maps the runs of records that verify and the spans of damage between
// them, split into records where their bytes (or the offsets file) tell;
// then resolve places each damaged span's positions between its good
// neighbours.

// segPlan is what the survey learned of one segment, existing or missing.
type segPlan struct {
	first   uint64 // its name: the tidwall index of its first entry
	missing bool   // no file: written anew
	readErr error  // the file could not be read: written anew
	items   []item // good runs and damaged spans, in order
	offset  int64  // of the first damage
	reason  string // the first damage
	// entries: how many tidwall entries it must hold (the next segment's
	// name says), 0 for the last segment.
	entries uint64
}

func (sp *segPlan) name() string { return segmentName(sp.first) }

// damagedSeg reports whether the segment must be rewritten.
func (sp *segPlan) damagedSeg() bool {
	if sp.missing || sp.readErr != nil {
		return true
	}
	for _, it := range sp.items {
		if !it.good {
			return true
		}
	}
	return false
}

// item is a run of good records, or a span of damage, in a segment.
type item struct {
	good bool
	// start, end: its bytes in the segment, length prefixes included; -1
	// when it has none (a missing segment, positions beyond the log).
	start, end int64
	// first, last: its positions. A good run's are its records'; a span's
	// are its own when known or hinted, else resolved from its neighbours.
	first, last uint64
	// records: tidwall entries it holds. For a span, 0 while unknown; it
	// stays 0 in the last segment, where their number is free (entries).
	records uint64
	// hinted: first and last are what its own header says, unverified;
	// exact: what the offsets file says. Either is taken when it fits.
	hinted, exact bool
	guess         byte // the version to read it as when its own is damaged
	torn          bool // resolved: a torn tail, cut
	seg           int  // the index of its segment in the survey
}

// maxMarkersPerRecord bounds the markers of one record the repair writes
// where it may choose how many records hold them (positions at the end of
// the log that no record holds any more): no record too large to write.
const maxMarkersPerRecord = 1 << 16

// entries returns the tidwall entries the span (or run) is written as:
// its records, or, where their number is free (the end of the log), one
// record per maxMarkersPerRecord positions.
func (it *item) entries() uint64 {
	if it.records > 0 {
		return it.records
	}
	return max(1, (it.last-it.first+1+maxMarkersPerRecord-1)/maxMarkersPerRecord)
}

// surveyor reads every segment once, in order, and maps where the damage
// is; resolve then places the positions of each damaged span.
type surveyor struct {
	dir     string
	opts    RepairOptions
	segs    []*segPlan
	vouched uint64 // by the offsets file

	lastGood    uint64 // the last position of the last good record so far
	lastVersion byte   // its version
	afterDamage bool   // damage lies between that record and what follows
	done, total int64  // bytes read, for Progress
	buf         []byte // the segment read, reused for the next
}

func (sv *surveyor) run(names []uint64, offsPath string) error {
	offs := openOffsetsStream(offsPath)
	defer offs.close()
	// The offsets file names segments too: one it lists that is not there
	// was deleted. Its entries also vouch for acknowledged positions.
	listed, vouched := offs.segments()
	sv.vouched = vouched
	exists := make(map[uint64]bool, len(names))
	for _, n := range names {
		exists[n] = true
		if st, err := os.Stat(filepath.Join(sv.dir, segmentName(n))); err == nil {
			sv.total += st.Size()
		}
	}
	all := slices.Clone(names)
	for _, n := range listed {
		if !exists[n] {
			all = append(all, n)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	if len(all) > 0 && all[0] != 1 {
		all = append([]uint64{1}, all...) // the first segment is missing
	}
	offs.rewind()
	for i, first := range all {
		sp := &segPlan{first: first, missing: !exists[first]}
		if i+1 < len(all) {
			sp.entries = all[i+1] - first
		}
		sv.segs = append(sv.segs, sp)
		locs := offs.take(first)
		if sp.missing {
			sv.missingSegment(sp, locs)
		} else {
			// A segment may follow one that was deleted, which nothing
			// but the positions it skips may tell (settle finds it).
			sv.afterDamage = sv.afterDamage || i > 0
			sv.segment(sp, locs)
		}
		if sv.opts.Progress != nil && !sp.missing {
			sv.opts.Progress(sv.done, sv.total)
		}
	}
	if err := sv.settle(); err != nil {
		return err
	}
	// Spans before any good record read as the version of the first one.
	guess := byte(0)
	for i := len(sv.segs) - 1; i >= 0; i-- {
		for j := len(sv.segs[i].items) - 1; j >= 0; j-- {
			it := &sv.segs[i].items[j]
			if it.good {
				guess = it.guess
			} else if it.guess == 0 {
				it.guess = guess
			}
		}
	}
	return nil
}

// missingSegment plans a segment whose file is gone: its records are the
// offsets file's entries for it, else one span of damage whose entries
// settle counts.
func (sv *surveyor) missingSegment(sp *segPlan, locs []recordLoc) {
	sp.reason = "the segment file is missing"
	sp.offset = -1
	for _, l := range locs {
		sp.items = append(sp.items, item{start: -1, end: -1, first: l.firstPos, last: l.lastPos(), records: 1, exact: true, guess: sv.lastVersion})
	}
	if len(locs) == 0 {
		sp.items = append(sp.items, item{start: -1, end: -1, guess: sv.lastVersion})
	}
	sv.afterDamage = true
}

// segment surveys one segment file: its runs of good records, and the
// spans of damage between them, split into records where their bytes tell.
func (sv *surveyor) segment(sp *segPlan, locs []recordLoc) {
	path := filepath.Join(sv.dir, sp.name())
	data, err := readSegment(path, sv.buf)
	sv.buf = data
	if err != nil {
		sp.readErr = err
		sv.missingSegment(sp, locs)
		sp.reason = fmt.Sprintf("the segment file cannot be read: %v", err)
		return
	}
	sv.done += int64(len(data))
	off := 0
	for off < len(data) {
		n, frame, reason := nextEntry(data[off:])
		if reason == "" {
			if first, count, err := decodeHeader(frame); err != nil {
				reason = err.Error()
			} else if sv.follows(first) {
				last := first + uint64(count) - 1
				if k := len(sp.items); k > 0 && sp.items[k-1].good && sp.items[k-1].end == int64(off) {
					sp.items[k-1].end, sp.items[k-1].last = int64(off+n), last
					sp.items[k-1].records++
				} else {
					sp.items = append(sp.items, item{good: true, start: int64(off), end: int64(off + n), first: first, last: last, records: 1, guess: frame[0]})
				}
				sv.lastGood, sv.lastVersion, sv.afterDamage = last, frame[0], false
				off += n
				continue
			} else {
				reason = fmt.Sprintf("record starts at position %d, expected %d", first, sv.lastGood+1)
			}
		}
		if sp.reason == "" {
			sp.offset, sp.reason = int64(off), reason
		}
		next := sv.resync(data, off)
		sp.items = append(sp.items, splitDamage(data, off, next, locs, sv.lastVersion)...)
		sv.afterDamage = true
		off = next
	}
}

// follows reports whether a good record starting at first can follow what
// the survey found so far: right after the last good record, or after it
// and damage between.
func (sv *surveyor) follows(first uint64) bool {
	if sv.afterDamage {
		return first > sv.lastGood
	}
	return first == sv.lastGood+1
}

// resync returns the offset of the next entry after from whose frame
// verifies and whose positions can follow, len(data) when there is none.
func (sv *surveyor) resync(data []byte, from int) int {
	next := len(data)
	validFrames(data, from+1, func(off int, first uint64, _ int) bool {
		if first > sv.lastGood {
			next = off
			return false
		}
		return true
	})
	return next
}

// splitDamage splits the damaged bytes [from, to) of a segment into spans,
// one per record where the bytes tell where records start: the offsets
// file's entries, else each entry's length (its uvarint prefix, or its
// frame header's payload length) where it leads to the next plausible
// record; a blob of unknown records where nothing does.
func splitDamage(data []byte, from, to int, locs []recordLoc, guess byte) []item {
	var spans []item
	for x := from; x < to; {
		if l, ok := locAt(locs, x); ok && int(l.off)+int(l.size) <= to {
			end := int(l.off) + int(l.size)
			spans = append(spans, item{start: int64(x), end: int64(end), first: l.firstPos, last: l.lastPos(), records: 1, exact: true, guess: guess})
			x = end
			continue
		}
		if end, ok := entryEnd(data, x, to); ok {
			it := item{start: int64(x), end: int64(end), records: 1, guess: guess}
			if first, count, ok := plausibleHeader(stripPrefix(data[x:end])); ok {
				it.first, it.last, it.hinted = first, first+uint64(count)-1, true
			}
			spans = append(spans, it)
			x = end
			continue
		}
		y := x + 1
		for y < to && !plausibleEntry(data, y, to) {
			y++
		}
		spans = append(spans, item{start: int64(x), end: int64(y), guess: guess})
		x = y
	}
	return spans
}

// locAt returns the offsets file's entry for the record whose tidwall
// entry starts at x.
func locAt(locs []recordLoc, x int) (recordLoc, bool) {
	i, ok := slices.BinarySearchFunc(locs, x, func(l recordLoc, x int) int {
		return int(l.off) - uvarintLen(uint64(l.size)) - x
	})
	if !ok {
		return recordLoc{}, false
	}
	return locs[i], true
}

// entryEnd returns where the tidwall entry starting at x ends, when its
// length (the uvarint prefix, or the frame header's payload length) leads
// to the end of the damaged bytes or to a plausible next entry.
func entryEnd(data []byte, x, to int) (int, bool) {
	fits := func(end int) bool { return end > x && end <= to && (end == to || plausibleEntry(data, end, to)) }
	if size, un := binary.Uvarint(data[x:to]); un > 0 && size <= uint64(to-x) {
		if end := x + un + int(size); fits(end) {
			return end, true
		}
	}
	for l := 1; l <= binary.MaxVarintLen32; l++ {
		h := x + l
		if h+frameHeaderSize > to || data[h] < formatV1 || data[h] > formatV3 {
			continue
		}
		size := frameHeaderSize + int(binary.LittleEndian.Uint32(data[h+1:]))
		if uvarintLen(uint64(size)) == l && size <= to-h {
			if end := h + size; fits(end) {
				return end, true
			}
		}
	}
	return 0, false
}

// plausibleEntry reports whether a tidwall entry whose frame looks right
// starts at y (up to to): its length fits, and its frame header and payload
// header and offset table hold together. The checksums are not checked:
// this finds where a damaged record starts.
func plausibleEntry(data []byte, y, to int) bool {
	size, un := binary.Uvarint(data[y:to])
	if un <= 0 || size < frameHeaderSize || size > uint64(to-y-un) {
		return false
	}
	frame := data[y+un : y+un+int(size)]
	if frame[0] < formatV1 || frame[0] > formatV3 || int(binary.LittleEndian.Uint32(frame[1:5])) != len(frame)-frameHeaderSize {
		return false
	}
	_, _, ok := plausibleHeader(frame)
	return ok
}

// plausibleHeader returns the first position and event count that a frame
// says it holds, if its payload header (and, for versions 2 and 3, its
// offset table) hold together; nothing is verified.
func plausibleHeader(frame []byte) (first uint64, count int, ok bool) {
	if len(frame) < frameHeaderSize || frame[0] < formatV1 || frame[0] > formatV3 {
		return 0, 0, false
	}
	p := frame[frameHeaderSize:]
	if frame[0] == formatV1 {
		d := payloadDecoder{b: p}
		first, _, count = d.header()
		return first, count, d.err == nil
	}
	first, count, err := v2Header(p)
	if err != nil {
		return 0, 0, false
	}
	prev := v2PayloadHeader + 4*count
	for i := range count {
		end := int(binary.LittleEndian.Uint32(p[v2PayloadHeader+4*i:]))
		if end < prev+v2EntryHeader || end > len(p) {
			return 0, 0, false
		}
		prev = end
	}
	return first, count, prev == len(p)
}

// settle checks each segment's records against the number of entries
// its name and the next one's give it. Entries missing from a segment are
// either records of a span of damage whose records could not be counted,
// or the records of a segment that was deleted after it: the latter where
// the positions show it (a segment ending on a good record, the next one
// starting on one, and positions between them that no record holds), or
// where no span can hold them.
func (sv *surveyor) settle() error {
	segs := make([]*segPlan, 0, len(sv.segs))
	for i, sp := range sv.segs {
		segs = append(segs, sp)
		if sp.entries == 0 {
			continue // the last segment: any number
		}
		found, blob := uint64(0), -1
		for i, it := range sp.items {
			found += max(it.records, 1)
			if !it.good && it.records == 0 {
				blob = i
			}
		}
		if found > sp.entries {
			return fmt.Errorf("wal: repair: segment %s holds at least %d records, but the next segment's name leaves room for %d: not a log this repair understands", sp.name(), found, sp.entries)
		}
		if d := sp.entries - found; d > 0 {
			gap := false
			if i+1 < len(sv.segs) && len(sp.items) > 0 && len(sv.segs[i+1].items) > 0 {
				last, next := sp.items[len(sp.items)-1], sv.segs[i+1].items[0]
				gap = last.good && next.good && next.first > last.last+1
			}
			if blob >= 0 && !gap {
				sp.items[blob].records = d + 1
			} else {
				missing := &segPlan{first: sp.first + found, missing: true, entries: d}
				sp.entries = found
				sv.missingSegment(missing, nil)
				missing.items[0].records = d
				segs = append(segs, missing)
			}
		}
		for i := range sp.items {
			if sp.items[i].records == 0 {
				sp.items[i].records = 1
			}
		}
	}
	sv.segs = segs
	return nil
}

// resolve places the positions of every damaged span: between the good
// records around it, each span's own positions where they fit (the offsets
// file's, else its header's), else what is left. vouched is the last
// acknowledged position. After the last good record, damage in the last
// segment that holds nothing up to vouched is a torn tail (cut); damage in
// an earlier segment, or a missing one, was written before a later segment
// existed and keeps at least a position per record; positions up to
// vouched that no record holds become markers at the end of the log.
func (sv *surveyor) resolve(vouched uint64) error {
	for i, sp := range sv.segs {
		for j := range sp.items {
			sp.items[j].seg = i
		}
	}
	next := uint64(1)
	var group []*item
	for _, sp := range sv.segs {
		for i := range sp.items {
			it := &sp.items[i]
			if !it.good {
				group = append(group, it)
				continue
			}
			if it.first < next {
				return fmt.Errorf("wal: repair: segment %s offset %d: record holds positions from %d, before %d", sp.name(), it.start, it.first, next)
			}
			if _, err := place(group, next, it.first-1, nil); err != nil {
				return fmt.Errorf("wal: repair: before segment %s offset %d: %w", sp.name(), it.start, err)
			}
			group, next = group[:0], it.last+1
		}
	}
	// The tail.
	tearable := func(it *item) bool {
		last := len(sv.segs) - 1
		return it.seg == last && !sv.segs[last].missing && sv.segs[last].readErr == nil
	}
	end := max(vouched, next-1)
	need := next - 1
	for _, it := range group {
		if !tearable(it) {
			need += max(it.records, 1)
		}
	}
	end = max(end, need)
	next, err := place(group, next, end, tearable)
	if err != nil {
		return fmt.Errorf("wal: repair: at the end of the log: %w", err)
	}
	if next > end {
		return nil
	}
	// Positions acknowledged beyond the last record: markers at the end.
	if len(sv.segs) == 0 {
		sv.segs = append(sv.segs, &segPlan{first: 1, missing: true})
	}
	sp := sv.segs[len(sv.segs)-1]
	if sp.reason == "" {
		sp.offset, sp.reason = -1, fmt.Sprintf("the log ends at position %d, but positions up to %d were acknowledged", next-1, end)
	}
	sp.items = append(sp.items, item{start: -1, end: -1, first: next, last: end, guess: sv.lastVersion, seg: len(sv.segs) - 1})
	return nil
}

// place gives the spans of group, in order, the positions from..to, and
// returns the position after the last it gave. A span takes its own
// positions (the offsets file's, else its header's) where they start where
// it must and leave room for the spans after it; a span without them takes
// one position per record, or, when it is the last before the next span
// whose own positions fit (or before to), everything up to there. Spans
// tearable says may be torn run out of positions past to: those are torn
// (cut). Without tearable spans, the spans must hold from..to exactly.
func place(group []*item, from, to uint64, tearable func(*item) bool) (uint64, error) {
	tears := func(it *item) bool { return tearable != nil && tearable(it) }
	own := func(it *item) bool { return it.exact || it.hinted }
	minimum := func(it *item) uint64 { return max(it.records, 1) }
	cannot := func() error {
		return fmt.Errorf("positions %d..%d cannot hold the %d damaged records found for them", from, to, len(group))
	}
	next := from
	for j, it := range group {
		if tears(it) && next > to {
			it.torn = true
			continue
		}
		need := uint64(0) // what the spans after it need at least
		for _, later := range group[j+1:] {
			if !tears(later) {
				need += minimum(later)
			}
		}
		if to < need || to-need+1 < next+minimum(it) && !tears(it) {
			return 0, cannot()
		}
		room := to - need // the last position it may take
		if own(it) && it.first == next && it.last >= it.first && it.last-it.first+1 >= minimum(it) && (it.last <= room || tears(it)) {
			next = it.last + 1
			continue
		}
		// Everything up to the next span whose own positions fit, less
		// what the spans between need; or up to room.
		upTo, bounded := room, false
		for k := j + 1; k < len(group); k++ {
			later := group[k]
			if !own(later) || later.first <= next || later.first-1 > room {
				continue
			}
			upTo, bounded = later.first-1, true
			for _, between := range group[j+1 : k] {
				upTo -= minimum(between)
			}
			break
		}
		takeAll := j == len(group)-1 || (bounded && upTo+1 == group[j+1].first) || (!bounded && tears(it))
		it.first, it.last = next, next+minimum(it)-1
		if takeAll {
			it.last = upTo
		}
		if it.last < it.first || it.last-it.first+1 < minimum(it) || it.last > room && !tears(it) {
			return 0, cannot()
		}
		next = it.last + 1
	}
	if tearable == nil && next != to+1 {
		return 0, fmt.Errorf("positions %d..%d are in no record", next, to)
	}
	return next, nil
}

// damaged returns the segments to rewrite, in order.
func (sv *surveyor) damaged() []*segPlan {
	var out []*segPlan
	for _, sp := range sv.segs {
		if sp.damagedSeg() {
			out = append(out, sp)
		}
	}
	return out
}

// totals returns the records the repaired log holds and its last position.
func (sv *surveyor) totals() (records, last uint64) {
	for _, sp := range sv.segs {
		for _, it := range sp.items {
			if it.torn {
				continue
			}
			records += it.entries()
			last = max(last, it.last)
		}
	}
	return records, last
}
