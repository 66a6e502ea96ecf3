package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
)

// Repair loses exactly what is damaged. Where Cut drops everything after
// the first damage, Repair keeps every record that verifies, and in a
// damaged record every event whose entry verifies its own checksum; it
// repairs the others from another copy (the store's event files) where
// that copy verifies against a stored checksum, and keeps the position of
// each event it cannot repair with a lost marker (see Record.Lost), so
// positions stay gap-free and every other event keeps its position and its
// bytes. Whole records whose events cannot be told apart (their frame's
// length or offset table damaged beyond what the entries' checksums can
// recover) and missing segments become markers. Only damaged segments are
// rewritten, each kept aside first as <segment>.broken.<time>, with the
// same number of tidwall entries (segment names are entry indexes); the
// offsets file is rebuilt.
//
// PlanRepair is the dry run: the same analysis, nothing written. Both read
// the log one segment at a time: memory grows with a segment, the damage
// found and the number of segments, never with the log.

// RepairOptions say what a repair may use beside the WAL's own bytes.
type RepairOptions struct {
	// Copy returns the event at pos as another copy holds it (the store's
	// event file), with its timestamp and ID; ok false when there is none
	// or it does not decode. It is asked only about damaged positions. Its
	// event repairs the position only when its entry, encoded as the
	// record's version, has the checksum stored for it; otherwise its type
	// and tags still go on the position's marker.
	Copy func(pos uint64) (dcb.Event, bool)
	// Known returns the type and tags something else still says the event
	// at pos had (the store's index files), ok false when nothing does.
	// Asked only for lost positions the other copy does not hold.
	Known func(pos uint64) (typ string, tags []string, ok bool)
	// Acknowledged: every position up to it was acknowledged (a
	// checkpoint vouches for it), so a log that ends before it lost those
	// positions, which become markers, instead of ending early. The
	// offsets file's entries vouch as well. Damage after the last position
	// either vouches for, with nothing valid after it, is a torn tail: cut.
	Acknowledged uint64
	// Progress, when set, is called after each segment the analysis reads
	// with the bytes read so far and the total (a terminal's progress bar).
	Progress func(done, total int64)
	// FS makes the repair's changes (copies aside, new segments, renames,
	// the offsets file) and their fsyncs: the fault seam of tests. nil:
	// the operating system's.
	FS vfs.FS
}

// PositionRange is the positions From..To, both included.
type PositionRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Count returns how many positions r holds.
func (r PositionRange) Count() uint64 { return r.To - r.From + 1 }

// RepairReport is what a repair found and did (PlanRepair: would do).
type RepairReport struct {
	Segments int `json:"segments"` // segment files read
	// Records and LastPosition describe the log after the repair: the
	// records it holds and its last position.
	Records      uint64 `json:"records"`
	LastPosition uint64 `json:"lastPosition"`
	// Vouched is the last position the offsets file and Acknowledged
	// vouch for: every position up to it was acknowledged.
	Vouched uint64 `json:"vouched"`
	// Damaged lists each damaged segment and what became of it, in order.
	Damaged []SegmentRepair `json:"damaged,omitempty"`
	// Lost lists every lost position (each now a marker), as ranges in
	// order; LostEvents counts them. Repaired counts the events repaired
	// from another copy or from a checksum that vouched for their bytes.
	Lost       []PositionRange `json:"lost,omitempty"`
	LostEvents uint64          `json:"lostEvents"`
	Repaired   uint64          `json:"repaired"`
	// Markers are leftover tidwall truncation markers (.START/.END), which
	// Repair moves aside.
	Markers []string `json:"markers,omitempty"`
	// Written: Repair changed the log (false for PlanRepair, and when
	// there was nothing to repair).
	Written bool `json:"written"`
}

// SegmentRepair is what a repair found in one damaged segment and did.
type SegmentRepair struct {
	Segment string `json:"segment"` // file name
	// Missing: the file was not there (a deleted segment); Unreadable: it
	// could not be read, and why. Either way it is written anew.
	Missing    bool   `json:"missing,omitempty"`
	Unreadable string `json:"unreadable,omitempty"`
	// Offset and Reason say where the first damage is, and what does not
	// hold there.
	Offset int64  `json:"offset"`
	Reason string `json:"reason"`
	// Copy is where the damaged segment was kept aside (Repair only).
	Copy string `json:"copy,omitempty"`
	// What in the damaged segment still verifies: the records whose frames
	// verify whole (kept byte for byte) and, in Records, the events of
	// damaged records whose entries verify their own checksums.
	IntactRecords uint64 `json:"intactRecords"`
	// Records lists the damaged records, in order.
	Records []RecordRepair `json:"records"`
	// CutBytes counts the bytes of a torn tail cut off the segment: damage
	// at its end that holds nothing acknowledged.
	CutBytes int64 `json:"cutBytes,omitempty"`
}

// RecordRepair is what became of one damaged record.
type RecordRepair struct {
	// Record is its tidwall entry index (1, 2, ...: "record 4521").
	Record uint64 `json:"record"`
	// Offset is where its entry starts in the damaged segment; -1 when
	// its bytes are gone.
	Offset      int64  `json:"offset"`
	First, Last uint64 // its positions
	Reason      string `json:"reason"`
	// Whole: its events could not be read one by one (its bytes are gone,
	// its payload does not hold its offset table, or it is a version 1
	// record, whose events have no checksums of their own): each was
	// repaired from its copy or lost.
	Whole bool `json:"whole,omitempty"`
	// Kept counts the events whose entries verify their own checksums;
	// Repaired and Lost list the others.
	Kept     uint64          `json:"kept"`
	Repaired []PositionRange `json:"repaired,omitempty"`
	Lost     []PositionRange `json:"lost,omitempty"`
}

// PlanRepair analyses the WAL in dir as Repair would repair it, and
// returns the report of what Repair would do; it changes nothing. It reads
// one segment at a time.
func PlanRepair(dir string, opts RepairOptions) (*RepairReport, error) {
	return repairLog(dir, opts, false)
}

// Repair repairs the WAL in dir (see the comment above RepairOptions) and
// reports what it did. It must not run while the log is open. A crash
// during a repair leaves every segment whole (the old one or the new) and
// the offsets file aside as offsets.repairing, which the next Repair uses:
// run it again.
func Repair(dir string, opts RepairOptions) (*RepairReport, error) {
	return repairLog(dir, opts, true)
}

// repairingName is where Repair keeps the offsets file while it rewrites
// segments: Open ignores it (a stale offsets file would place records
// wrongly), the next Repair reads it.
const repairingName = offsetsName + ".repairing"

func repairLog(dir string, opts RepairOptions, write bool) (*RepairReport, error) {
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	names, markers, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	offsPath := filepath.Join(dir, repairingName)
	if _, err := os.Stat(offsPath); err != nil {
		offsPath = filepath.Join(dir, offsetsName)
	}
	sv := &surveyor{dir: dir, opts: opts}
	if err := sv.run(names, offsPath); err != nil {
		return nil, err
	}
	rep := &RepairReport{Segments: len(names), Markers: markers, Vouched: max(opts.Acknowledged, sv.vouched)}
	if err := sv.resolve(rep.Vouched); err != nil {
		return nil, err
	}
	damaged := sv.damaged()
	rw := &rewriter{dir: dir, fs: opts.FS, sal: &salvager{opts: opts}, stamp: "." + brokenSuffix()}
	if write && (len(damaged) > 0 || len(markers) > 0) {
		// From here on the offsets file would place records wrongly.
		if _, err := os.Stat(filepath.Join(dir, offsetsName)); err == nil {
			if err := rw.fs.Rename(filepath.Join(dir, offsetsName), filepath.Join(dir, repairingName)); err != nil {
				return nil, fmt.Errorf("wal: repair: %w", err)
			}
			if err := rw.fs.SyncDir(dir); err != nil {
				return nil, fmt.Errorf("wal: repair: %w", err)
			}
		}
	}
	for _, sp := range damaged {
		sr, err := rw.segment(sp, write)
		if err != nil {
			return nil, err
		}
		rep.Damaged = append(rep.Damaged, sr)
		for _, rr := range sr.Records {
			for _, r := range rr.Lost {
				rep.Lost = appendRange(rep.Lost, r.From, r.To)
				rep.LostEvents += r.Count()
			}
			for _, r := range rr.Repaired {
				rep.Repaired += r.Count()
			}
		}
	}
	rep.Records, rep.LastPosition = sv.totals()
	if !write || (len(damaged) == 0 && len(markers) == 0) {
		return rep, nil
	}
	for _, m := range markers {
		path := filepath.Join(dir, m)
		if err := rw.fs.Rename(path, path+rw.stamp); err != nil {
			return nil, fmt.Errorf("wal: repair: move aside %s: %w", m, err)
		}
	}
	if err := rw.fs.SyncDir(dir); err != nil {
		return nil, fmt.Errorf("wal: repair: %w", err)
	}
	records, last, err := rw.rebuildOffsets()
	if err != nil {
		return nil, err
	}
	if records != rep.Records || last != rep.LastPosition {
		return nil, fmt.Errorf("wal: repair: the repaired log holds %d records up to position %d, expected %d up to %d", records, last, rep.Records, rep.LastPosition)
	}
	rep.Written = true
	return rep, nil
}

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
	// records: tidwall entries it holds; for a span, 0 while unknown.
	records uint64
	// hinted: first and last are what its own header says, unverified;
	// exact: what the offsets file says. Either is taken when it fits.
	hinted, exact bool
	guess         byte // the version to read it as when its own is damaged
	torn          bool // resolved: a torn tail, cut
	seg           int  // the index of its segment in the survey
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
}

func (sv *surveyor) run(names []uint64, offsPath string) error {
	offs := openOffsetsStream(offsPath)
	defer offs.close()
	// The offsets file names segments too: one it lists that is not there
	// was deleted. Its entries also vouch for acknowledged positions.
	listed, vouched, err := offs.segments()
	if err != nil {
		return err
	}
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
	if err := offs.rewind(); err != nil {
		return err
	}
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
			sv.segment(sp, locs)
		}
		if err := sv.settle(sp); err != nil {
			return err
		}
		if sv.opts.Progress != nil && !sp.missing {
			sv.opts.Progress(sv.done, sv.total)
		}
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
	data, err := os.ReadFile(path)
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
	for o := from + 1; o+frameHeaderSize < len(data); o++ {
		// cheap filter before the checksum: the version byte right after the length
		if _, un := binary.Uvarint(data[o:]); un <= 0 || o+un >= len(data) || data[o+un] < formatV1 || data[o+un] > formatV3 {
			continue
		}
		if _, frame, reason := nextEntry(data[o:]); reason == "" {
			if first, _, err := decodeHeader(frame); err == nil && first > sv.lastGood {
				return o
			}
		}
	}
	return len(data)
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

// settle checks a segment's records against the number of entries its
// name and the next one's give it, and gives spans of unknown records
// what is left; where nothing can take it, a segment is missing after
// this one.
func (sv *surveyor) settle(sp *segPlan) error {
	if sp.entries == 0 {
		return nil // the last segment: any number
	}
	found, blob := uint64(0), -1
	for i, it := range sp.items {
		found += max(it.records, 1)
		if !it.good && it.records == 0 {
			blob = i
		}
	}
	switch {
	case found > sp.entries:
		return fmt.Errorf("wal: repair: segment %s holds at least %d records, but the next segment's name leaves room for %d: not a log this repair understands", sp.name(), found, sp.entries)
	case found == sp.entries:
	case blob >= 0:
		sp.items[blob].records = sp.entries - found + 1
	default:
		// No damage here can hold the entries missing: the segment
		// holding them was deleted.
		missing := &segPlan{first: sp.first + found, missing: true, entries: sp.entries - found}
		sp.entries = found
		sv.missingSegment(missing, nil)
		missing.items[0].records = missing.entries
		sv.segs = append(sv.segs, missing)
	}
	for i := range sp.items {
		if sp.items[i].records == 0 && sp.entries != 0 {
			sp.items[i].records = 1
		}
	}
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
	sp.items = append(sp.items, item{start: -1, end: -1, first: next, last: end, records: 1, guess: sv.lastVersion, seg: len(sv.segs) - 1})
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
			records += max(it.records, 1)
			last = max(last, it.last)
		}
	}
	return records, last
}

// rewriter writes the repaired segments.
type rewriter struct {
	dir   string
	fs    vfs.FS
	sal   *salvager
	stamp string // ".broken.<time>", one per repair
}

// segment salvages the damaged segment sp and, with write, replaces it:
// the damaged file kept aside, the new one written to a temporary file,
// fsync'd and renamed into place, the directory fsync'd.
func (rw *rewriter) segment(sp *segPlan, write bool) (SegmentRepair, error) {
	sr := SegmentRepair{Segment: sp.name(), Missing: sp.missing, Offset: sp.offset, Reason: sp.reason}
	path := filepath.Join(rw.dir, sp.name())
	var data []byte
	if sp.readErr != nil {
		sr.Unreadable = sp.readErr.Error()
	} else if !sp.missing {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return sr, fmt.Errorf("wal: repair: %w", err)
		}
	}
	var out []byte
	index := sp.first // tidwall index of the next entry
	for _, it := range sp.items {
		switch {
		case it.good:
			out = append(out, data[it.start:it.end]...)
			sr.IntactRecords += it.records
			index += it.records
			continue
		case it.torn:
			sr.CutBytes += it.end - it.start
			continue
		}
		var bytes []byte
		if it.start >= 0 && data != nil {
			bytes = data[it.start:it.end]
		}
		records := max(it.records, 1)
		if records == 1 {
			rr := RecordRepair{Record: index, Offset: it.start}
			frame, intact, err := rw.sal.record(bytes, it.first, it.last, it.guess, &rr)
			if err != nil {
				return sr, err
			}
			out = appendEntryBytes(out, frame)
			if intact {
				sr.IntactRecords++
			} else {
				sr.Records = append(sr.Records, rr)
			}
			index++
			continue
		}
		// Records that cannot be told apart: markers, the positions shared
		// out evenly (as the records of appends of one size were), the
		// first records taking one more where they do not divide.
		count := it.last - it.first + 1
		first := it.first
		for k := range records {
			last := first + count/records - 1
			if k < count%records {
				last++
			}
			frame, err := rw.sal.markers(first, last)
			if err != nil {
				return sr, err
			}
			out = appendEntryBytes(out, frame)
			rr := RecordRepair{Record: index, Offset: it.start, First: first, Last: last, Whole: true,
				Reason: "its frame cannot be told apart from its neighbours'", Lost: []PositionRange{{first, last}}}
			if k > 0 {
				rr.Offset = -1
			}
			sr.Records = append(sr.Records, rr)
			index++
			first = last + 1
		}
	}
	if !write {
		return sr, nil
	}
	switch {
	case sp.readErr != nil:
		// Unreadable: moved aside whole, as it is.
		if err := rw.fs.Rename(path, path+rw.stamp); err != nil {
			return sr, fmt.Errorf("wal: repair: move aside %s: %w", sp.name(), err)
		}
		sr.Copy = path + rw.stamp
	case !sp.missing:
		if err := copyFile(rw.fs, path, path+rw.stamp); err != nil {
			return sr, fmt.Errorf("wal: repair: keep a copy of %s: %w", sp.name(), err)
		}
		sr.Copy = path + rw.stamp
	}
	if err := vfs.WriteFileDurably(rw.fs, path, filepath.Join(rw.dir, "repair.tmp"), out, 0o640); err != nil {
		return sr, fmt.Errorf("wal: repair: write %s: %w", sp.name(), err)
	}
	return sr, nil
}

// appendEntryBytes appends frame as a tidwall entry: its uvarint length,
// then the frame.
func appendEntryBytes(dst, frame []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(frame)))
	return append(dst, frame...)
}

// rebuildOffsets scans the repaired log, which must verify from end to end,
// and writes its offsets file anew (to a temporary file, fsync'd, renamed
// into place, the directory fsync'd), then drops the one kept aside. It
// returns the records and last position it found.
func (rw *rewriter) rebuildOffsets() (records, last uint64, err error) {
	names, _, err := listSegments(rw.dir)
	if err != nil {
		return 0, 0, err
	}
	tmp := filepath.Join(rw.dir, offsetsName+".tmp")
	f, err := rw.fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return 0, 0, fmt.Errorf("wal: repair: offsets: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fail := func(err error) (uint64, uint64, error) {
		f.Close()
		return 0, 0, err
	}
	header := binary.LittleEndian.AppendUint32([]byte(offsetsMagic), offsetsVersion)
	if _, err := w.Write(header); err != nil {
		return fail(fmt.Errorf("wal: repair: offsets: %w", err))
	}
	nextIndex, nextPos := uint64(1), uint64(1)
	var buf []byte
	for i, first := range names {
		name := segmentName(first)
		if first != nextIndex {
			return fail(fmt.Errorf("wal: repair: the repaired log: segment %s starts at entry %d, expected %d", name, first, nextIndex))
		}
		data, err := readFrom(filepath.Join(rw.dir, name), 0)
		if err != nil {
			return fail(fmt.Errorf("wal: repair: %w", err))
		}
		sc := scanSegment(data, uint32(i), 0, nextPos)
		if sc.damage != nil {
			return fail(fmt.Errorf("wal: repair: the repaired log still fails its checks: %s at segment %s offset %d", sc.damage.reason, name, sc.damage.offset))
		}
		buf = buf[:0]
		for _, loc := range sc.locs {
			buf = appendOffsetEntry(buf, loc, first)
			nextPos = loc.lastPos() + 1
		}
		if _, err := w.Write(buf); err != nil {
			return fail(fmt.Errorf("wal: repair: offsets: %w", err))
		}
		records += uint64(len(sc.locs))
		nextIndex = first + uint64(len(sc.locs))
	}
	if err := w.Flush(); err != nil {
		return fail(fmt.Errorf("wal: repair: offsets: %w", err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("wal: repair: fsync offsets: %w", err))
	}
	if err := f.Close(); err != nil {
		return 0, 0, fmt.Errorf("wal: repair: offsets: %w", err)
	}
	if err := rw.fs.Rename(tmp, filepath.Join(rw.dir, offsetsName)); err != nil {
		return 0, 0, fmt.Errorf("wal: repair: offsets: %w", err)
	}
	if err := rw.fs.Remove(filepath.Join(rw.dir, repairingName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("wal: repair: %w", err)
	}
	if err := rw.fs.SyncDir(rw.dir); err != nil {
		return 0, 0, fmt.Errorf("wal: repair: %w", err)
	}
	return records, nextPos - 1, nil
}

// offsetsStream reads the offsets file in order, a chunk at a time: its
// entries that check out (their checksums, gap-free positions), up to the
// first that does not.
type offsetsStream struct {
	path string
	f    *os.File
	r    *bufio.Reader
	next uint64 // the first position the next entry must hold
	peek *offsetEntry
	done bool
	// left: how many more entries to read; segments sets it to those it
	// trusted (-1: no bound).
	left int
}

type offsetEntry struct {
	loc      recordLoc
	segFirst uint64
}

func openOffsetsStream(path string) *offsetsStream {
	s := &offsetsStream{path: path, left: -1}
	_ = s.rewind()
	return s
}

// rewind starts reading again from the first entry. A missing or foreign
// file has none.
func (s *offsetsStream) rewind() error {
	s.close()
	s.next, s.peek, s.done = 1, nil, true
	if s.left == 0 {
		return nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil
	}
	var header [offsetsHeaderSize]byte
	if _, err := io.ReadFull(f, header[:]); err != nil || string(header[:4]) != offsetsMagic ||
		binary.LittleEndian.Uint32(header[4:8]) != offsetsVersion {
		f.Close()
		return nil
	}
	s.f, s.r, s.done = f, bufio.NewReaderSize(f, offsetsChunk*offsetsEntrySize), false
	return nil
}

func (s *offsetsStream) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// entry returns the next entry without consuming it.
func (s *offsetsStream) entry() (offsetEntry, bool) {
	if s.peek != nil {
		return *s.peek, true
	}
	if s.done || s.left == 0 {
		return offsetEntry{}, false
	}
	var b [offsetsEntrySize]byte
	if _, err := io.ReadFull(s.r, b[:]); err != nil {
		s.done = true
		return offsetEntry{}, false
	}
	loc, segFirst, ok := decodeOffsetEntry(b[:])
	if !ok || loc.firstPos != s.next {
		s.done = true
		return offsetEntry{}, false
	}
	s.next = loc.lastPos() + 1
	s.peek = &offsetEntry{loc: loc, segFirst: segFirst}
	if s.left > 0 {
		s.left--
	}
	return *s.peek, true
}

// take returns the entries of the segment named first, skipping those of
// segments before it.
func (s *offsetsStream) take(first uint64) []recordLoc {
	var locs []recordLoc
	for {
		e, ok := s.entry()
		if !ok || e.segFirst > first {
			return locs
		}
		s.peek = nil
		if e.segFirst == first {
			locs = append(locs, e.loc)
		}
	}
}

// segments reads every entry and returns the segments they name, in
// order, and the last position they vouch for. Entries after one whose
// segment goes back are not trusted: after a rewind, the stream ends
// before them.
func (s *offsetsStream) segments() (names []uint64, vouched uint64, err error) {
	trusted := 0
	defer func() { s.left = trusted }()
	for {
		e, ok := s.entry()
		if !ok {
			return names, vouched, nil
		}
		s.peek = nil
		if n := len(names); n == 0 || names[n-1] != e.segFirst {
			if n > 0 && e.segFirst < names[n-1] {
				return names, vouched, nil
			}
			names = append(names, e.segFirst)
		}
		vouched = e.loc.lastPos()
		trusted++
	}
}
