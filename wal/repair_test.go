package wal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// repairEvents is how many events each WAL of the repair tests holds:
// POSSUM_REPAIR_EVENTS, 4000 by default, 2000 with -short (the issue's
// realistic size is 200000 and more).
func repairEvents(t testing.TB) int {
	return testenv.Scaled(t, "POSSUM_REPAIR_EVENTS", 4000, 2000)
}

// repairEvent is the event at pos of the repair tests' logs, as a decoding
// returns it.
func repairEvent(pos uint64) dcb.Event {
	e := dcb.Event{
		Type:      fmt.Sprintf("T%d", pos%4),
		Tags:      []string{fmt.Sprintf("p:%d", pos), fmt.Sprintf("g:%d", pos%7)},
		Data:      json.RawMessage(fmt.Sprintf(`{"pos":%d,"pad":%q}`, pos, strings.Repeat("x", int(20+pos%50)))),
		Timestamp: time.Unix(1700000000, int64(pos)).UTC(),
	}
	if pos%3 == 0 {
		e.ID = fmt.Sprintf("id-%d", pos)
	}
	if pos%5 == 0 {
		e.Metadata = map[string]string{"m": strconv.FormatUint(pos, 10)}
	}
	return e
}

// repairSegmentSize makes the tests' logs hold several segments.
const repairSegmentSize = 16 << 10

// writeRepairLog writes a log of n events in records of perRecord events
// (the last may hold fewer) with Log, and returns its last position.
func writeRepairLog(t testing.TB, dir string, n, perRecord int) uint64 {
	t.Helper()
	l := openLog(t, dir, Options{SegmentSize: repairSegmentSize, NoSync: true})
	var batch []Record
	for pos := uint64(1); pos <= uint64(n); {
		r := Record{FirstPosition: pos}
		for i := 0; i < perRecord && pos <= uint64(n); i++ {
			r.Events = append(r.Events, repairEvent(pos))
			pos++
		}
		batch = append(batch, r)
		if len(batch) == 64 || pos > uint64(n) {
			require.NoError(t, l.Append(batch))
			batch = batch[:0]
		}
	}
	require.NoError(t, l.Close())
	return uint64(n)
}

// recInfo is where one record of a log lives.
type recInfo struct {
	seg      string // segment file name
	index    uint64 // tidwall entry index
	entryOff int64  // the tidwall entry: length prefix, then the frame
	frameOff int64
	frameLen int64
	first    uint64
	entries  [][2]int64 // each event's entry: file offsets [start, end)
}

func (r recInfo) last() uint64 { return r.first + uint64(len(r.entries)) - 1 }

// walLayout maps every record of the intact log in dir.
func walLayout(t testing.TB, dir string) []recInfo {
	t.Helper()
	var out []recInfo
	for _, name := range segmentFiles(t, dir) {
		path := filepath.Join(dir, name)
		data := readFile(t, path)
		first, err := strconv.ParseUint(name, 10, 64)
		require.NoError(t, err)
		for i, e := range segmentEntries(t, path) {
			frame := data[e.off+e.prefix : e.end()]
			h, err := parseHeaderV2(frame[0], frame[frameHeaderSize:])
			require.NoError(t, err)
			r := recInfo{seg: name, index: first + uint64(i), entryOff: e.off, frameOff: e.off + e.prefix, frameLen: e.size - e.prefix, first: h.first}
			payload := r.frameOff + frameHeaderSize
			for j := range h.events {
				r.entries = append(r.entries, [2]int64{payload + int64(h.events[j]-v3EntryHeader), payload + int64(h.end(j))})
			}
			out = append(out, r)
		}
	}
	return out
}

// entryBytes returns the stored entry of every position of the log in dir.
func entryBytes(t testing.TB, dir string) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	files := map[string][]byte{}
	for _, r := range walLayout(t, dir) {
		if files[r.seg] == nil {
			files[r.seg] = readFile(t, filepath.Join(dir, r.seg))
		}
		for j, e := range r.entries {
			out[r.first+uint64(j)] = files[r.seg][e[0]:e[1]]
		}
	}
	return out
}

// damageSite names the record a damage case hits: the middle record of the
// middle segment (or of a later one), and its middle event.
type damageSite struct {
	layout []recInfo
	rec    recInfo
}

func (d damageSite) event() (uint64, [2]int64) {
	j := len(d.rec.entries) / 2
	return d.rec.first + uint64(j), d.rec.entries[j]
}

// siteIn returns the middle record of the segment k-th of the way through
// the log (k in 1/frac units).
func siteIn(layout []recInfo, num, den int) damageSite {
	var segs []string
	for _, r := range layout {
		if len(segs) == 0 || segs[len(segs)-1] != r.seg {
			segs = append(segs, r.seg)
		}
	}
	seg := segs[len(segs)*num/den]
	var recs []recInfo
	for _, r := range layout {
		if r.seg == seg {
			recs = append(recs, r)
		}
	}
	return damageSite{layout: layout, rec: recs[len(recs)/2]}
}

func positions(from, to uint64) []uint64 {
	var out []uint64
	for p := from; p <= to; p++ {
		out = append(out, p)
	}
	return out
}

// ranges turns sorted positions into ranges.
func ranges(ps []uint64) []PositionRange {
	var out []PositionRange
	for _, p := range ps {
		out = appendRange(out, p, p)
	}
	return out
}

// copies is what a store's event files hold: every event but the deleted.
type copies struct {
	deleted map[uint64]bool
	known   bool // the index files still say each position's type and tags
}

func (c copies) options() RepairOptions {
	opts := RepairOptions{Copy: func(pos uint64) (dcb.Event, bool) {
		if c.deleted[pos] {
			return dcb.Event{}, false
		}
		return repairEvent(pos), true
	}}
	if c.deleted == nil {
		opts.Copy = nil
	}
	if c.known {
		opts.Known = func(pos uint64) (string, []string, bool) {
			e := repairEvent(pos)
			return e.Type, e.Tags, true
		}
	}
	return opts
}

// marker is what the repair must leave at a lost position pos.
func (c copies) marker(pos uint64) dcb.SequencedEvent {
	if c.known || (c.deleted != nil && !c.deleted[pos]) {
		e := repairEvent(pos)
		return dcb.SequencedEvent{Event: dcb.Event{Type: e.Type, Tags: e.Tags}, Position: pos, Lost: true}
	}
	return dcb.SequencedEvent{Position: pos, Lost: true}
}

var (
	noCopies  = copies{}
	allCopies = copies{deleted: map[uint64]bool{}}
)

// repairCase is one kind of damage: what it does to a log, what the store
// still has, and what must be lost: exactly want, or, where the damage's
// geometry decides, at least atLeast and at most atMost.
type repairCase struct {
	name    string
	damage  func(t *testing.T, dir string, layout []recInfo) (want, atLeast, atMost []uint64, c copies)
	noOffs  bool // the offsets file is deleted too
	perRecs []int
}

func flipAt(t *testing.T, dir, seg string, off int64) {
	t.Helper()
	flipBit(t, filepath.Join(dir, seg), off)
}

func repairCases() []repairCase {
	all := []int{1, 10, 1000}
	return []repairCase{
		{name: "data flip, event file present", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			_, e := s.event()
			flipAt(t, dir, s.rec.seg, e[1]-5) // inside its data
			return nil, nil, nil, allCopies
		}},
		{name: "data flip, event file deleted", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			pos, e := s.event()
			flipAt(t, dir, s.rec.seg, e[1]-5)
			return []uint64{pos}, nil, nil, copies{deleted: map[uint64]bool{pos: true}, known: true}
		}},
		{name: "data flip, nothing else knows it", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			pos, e := s.event()
			flipAt(t, dir, s.rec.seg, e[1]-5)
			return []uint64{pos}, nil, nil, noCopies
		}},
		{name: "entry checksum flip", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			_, e := s.event()
			flipAt(t, dir, s.rec.seg, e[0]+3)
			return nil, nil, nil, noCopies // the frame checksum vouches for the rest
		}},
		{name: "entry checksum and frame checksum flip, event file present", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			pos, e := s.event()
			flipAt(t, dir, s.rec.seg, e[0]+3)
			flipAt(t, dir, s.rec.seg, s.rec.frameOff+6)
			// Nothing vouches for the event's bytes any more.
			return []uint64{pos}, nil, nil, allCopies
		}},
		{name: "record header flip", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			flipAt(t, dir, s.rec.seg, s.rec.frameOff+frameHeaderSize+1) // its first position
			return nil, nil, nil, noCopies
		}},
		{name: "frame length flip", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			flipAt(t, dir, s.rec.seg, s.rec.frameOff+2)
			return nil, nil, nil, noCopies
		}},
		{name: "offset table flip", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			j := len(s.rec.entries) / 2
			flipAt(t, dir, s.rec.seg, s.rec.frameOff+frameHeaderSize+v2PayloadHeader+4*int64(j))
			return nil, nil, nil, noCopies
		}},
		{name: "frame header zeroed", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			zero(t, dir, s.rec.seg, s.rec.entryOff, s.rec.frameOff+frameHeaderSize+v2PayloadHeader)
			return nil, nil, nil, noCopies // the entries' own checksums find them
		}},
		{name: "frame header and offset table zeroed, no offsets file", perRecs: all, noOffs: true, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			zero(t, dir, s.rec.seg, s.rec.entryOff, s.rec.entries[0][0])
			return nil, nil, nil, noCopies
		}},
		{name: "first record of a segment unreadable", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			for _, r := range layout {
				if r.seg == s.rec.seg {
					// Its header, offset table and first entry: nothing
					// tells where its events start.
					zero(t, dir, r.seg, r.entryOff, r.entries[0][1])
					if len(r.entries) > 1 {
						zero(t, dir, r.seg, r.entries[1][0], r.entries[1][0]+8)
					}
					if len(r.entries) < 3 {
						return positions(r.first, r.last()), nil, nil, copies{known: true}
					}
					return []uint64{r.first, r.first + 1}, nil, nil, copies{known: true}
				}
			}
			panic("no record")
		}},
		{name: "last record of a segment, frame lost", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			var last recInfo
			for _, r := range layout {
				if r.seg == s.rec.seg {
					last = r
				}
			}
			// Every entry's checksum: nothing verifies.
			path := filepath.Join(dir, last.seg)
			b := readFile(t, path)
			for _, e := range last.entries {
				clear(b[e[0] : e[0]+8])
			}
			clear(b[last.frameOff+5 : last.frameOff+13])
			writeFile(t, path, b)
			return positions(last.first, last.last()), nil, nil, copies{known: true}
		}},
		{name: "zeroed page", perRecs: all, damage: zeroPage(noCopies)},
		{name: "zeroed page, event files present", perRecs: all, damage: zeroPage(allCopies)},
		{name: "middle segment deleted", perRecs: all, damage: deleteSegment},
		{name: "middle segment deleted, no offsets file", perRecs: all, noOffs: true, damage: deleteSegment},
		{name: "two places", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			a, b := siteIn(layout, 1, 3), siteIn(layout, 2, 3)
			pa, ea := a.event()
			pb, eb := b.event()
			flipAt(t, dir, a.rec.seg, ea[1]-5)
			flipAt(t, dir, b.rec.seg, eb[1]-5)
			flipAt(t, dir, b.rec.seg, b.rec.frameOff+frameHeaderSize+1)
			return []uint64{pa, pb}, nil, nil, copies{known: true}
		}},
		{name: "data flip, no offsets file", perRecs: all, noOffs: true, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			s := siteIn(layout, 1, 2)
			pos, e := s.event()
			flipAt(t, dir, s.rec.seg, e[1]-5)
			flipAt(t, dir, s.rec.seg, s.rec.frameOff+2)
			return []uint64{pos}, nil, nil, noCopies
		}},
		{name: "last record damaged, acknowledged", perRecs: all, damage: func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
			last := layout[len(layout)-1]
			pos := last.last()
			flipAt(t, dir, last.seg, last.entries[len(last.entries)-1][1]-5)
			return []uint64{pos}, nil, nil, noCopies
		}},
	}
}

// zero zeroes the bytes [from, to) of segment seg.
func zero(t *testing.T, dir, seg string, from, to int64) {
	t.Helper()
	path := filepath.Join(dir, seg)
	b := readFile(t, path)
	clear(b[from:to])
	writeFile(t, path, b)
}

// zeroPage zeroes 4 KiB in the middle of a middle segment. What is lost
// depends on what the page hits: at least every event whose entry it
// overlaps (without their event files), at most every event of a record it
// overlaps.
func zeroPage(c copies) func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
	return func(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
		s := siteIn(layout, 1, 2)
		path := filepath.Join(dir, s.rec.seg)
		b := readFile(t, path)
		from := int64(len(b)/2) &^ 4095
		to := min(from+4096, int64(len(b)))
		clear(b[from:to])
		writeFile(t, path, b)
		var atLeast, atMost []uint64
		for _, r := range layout {
			if r.seg != s.rec.seg || r.entryOff >= to || r.frameOff+r.frameLen <= from {
				continue
			}
			for j, e := range r.entries {
				pos := r.first + uint64(j)
				atMost = append(atMost, pos)
				if c.deleted == nil && e[0] < to && e[1] > from {
					atLeast = append(atLeast, pos)
				}
			}
		}
		require.NotEmpty(t, atMost)
		return nil, atLeast, atMost, c
	}
}

// deleteSegment deletes the middle segment: exactly its positions are lost.
func deleteSegment(t *testing.T, dir string, layout []recInfo) ([]uint64, []uint64, []uint64, copies) {
	s := siteIn(layout, 1, 2)
	require.NoError(t, os.Remove(filepath.Join(dir, s.rec.seg)))
	var want []uint64
	for _, r := range layout {
		if r.seg == s.rec.seg {
			want = append(want, positions(r.first, r.last())...)
		}
	}
	return want, nil, nil, copies{known: true}
}

// TestRepairDamageTable: for each kind of damage, on logs of records of 1,
// 10 and 1000 events over several segments, PlanRepair changes nothing and
// reports what Repair then does; after Repair the log opens, every event
// not lost reads back with its original entry bytes at its position, the
// lost positions read as markers (with their type and tags where the store
// still knew them), the report names exactly those positions, the offsets
// file vouches for the repaired log, the damaged segments are kept aside,
// and appends go on at the old head plus one.
func TestRepairDamageTable(t *testing.T) {
	n := repairEvents(t)
	for _, per := range []int{1, 10, 1000} {
		template := t.TempDir()
		head := writeRepairLog(t, template, max(n, 4*per), per)
		layout := walLayout(t, template)
		orig := entryBytes(t, template)
		require.Greater(t, len(segmentFiles(t, template)), 3)
		for _, tc := range repairCases() {
			if !slices.Contains(tc.perRecs, per) {
				continue
			}
			t.Run(fmt.Sprintf("records of %d/%s", per, tc.name), func(t *testing.T) {
				dir := t.TempDir()
				for name, content := range snapshot(t, template) {
					writeFile(t, filepath.Join(dir, name), []byte(content))
				}
				if tc.noOffs {
					require.NoError(t, os.Remove(filepath.Join(dir, offsetsName)))
				}
				want, atLeast, atMost, c := tc.damage(t, dir, layout)
				opts := c.options()
				opts.Acknowledged = head
				opts.FS = noSyncFS{vfs.OS}
				checkRepair(t, dir, head, orig, want, atLeast, atMost, c, opts)
			})
		}
	}
}

// checkRepair runs PlanRepair and Repair on the damaged log in dir and
// checks the outcome (see TestRepairDamageTable). want: the exact lost
// positions, or nil with bounds atLeast and atMost.
func checkRepair(t *testing.T, dir string, head uint64, orig map[uint64][]byte, want, atLeast, atMost []uint64, c copies, opts RepairOptions) *RepairReport {
	t.Helper()
	before := snapshot(t, dir)
	var progress []int64
	opts.Progress = func(done, total int64) { progress = append(progress, done) }
	plan, err := PlanRepair(dir, opts)
	require.NoError(t, err)
	assert.Equal(t, before, snapshot(t, dir), "PlanRepair changes nothing")
	assert.False(t, plan.Written)
	assert.True(t, slices.IsSorted(progress) && len(progress) > 0, "progress %v", progress)
	opts.Progress = nil

	rep, err := Repair(dir, opts)
	require.NoError(t, err)
	require.True(t, rep.Written)
	assert.Equal(t, head, rep.LastPosition)
	plan.Written = true
	for i, sr := range rep.Damaged {
		if sr.Missing {
			assert.Empty(t, sr.Copy, "segment %s: nothing to keep aside", sr.Segment)
		} else {
			assert.FileExists(t, sr.Copy, "segment %s kept aside", sr.Segment)
			assert.Equal(t, before[sr.Segment], string(readFile(t, sr.Copy)), "segment %s kept aside as it was", sr.Segment)
		}
		plan.Damaged[i].Copy = sr.Copy
		if sr.Copy != "" {
			assert.Contains(t, rep.Kept, sr.Copy, "Kept lists what was kept aside")
		}
	}
	assert.Empty(t, plan.Kept, "PlanRepair keeps nothing aside")
	plan.Kept = rep.Kept // paths only Repair knows (their time)
	assert.Equal(t, plan, rep, "PlanRepair reports what Repair does")

	var lost []uint64
	for _, r := range rep.Lost {
		lost = append(lost, positions(r.From, r.To)...)
	}
	if want != nil || (atLeast == nil && atMost == nil) {
		assert.Equal(t, want, lost, "lost positions")
	} else {
		assert.Subset(t, lost, atLeast, "at least the events whose entries the damage hit are lost")
		assert.Subset(t, atMost, lost, "at most the events of the records the damage hit are lost")
	}
	assert.Equal(t, uint64(len(lost)), rep.LostEvents)
	var recLost []uint64
	for _, sr := range rep.Damaged {
		for _, rr := range sr.Records {
			for _, r := range rr.Lost {
				recLost = append(recLost, positions(r.From, r.To)...)
			}
			assert.LessOrEqual(t, rr.First, rr.Last)
		}
	}
	assert.Equal(t, lost, recLost, "the records' lost positions add up to the report's")

	// The repaired log: it opens clean, every position reads as it must.
	isLost := map[uint64]bool{}
	for _, p := range lost {
		isLost[p] = true
	}
	// Every entry, located by a scan: the original's bytes, or a marker.
	got := entryBytesOf(t, dir, head)
	for pos := uint64(1); pos <= head; pos++ {
		if isLost[pos] {
			e, err := decodeEntry(formatV3, pos, got[pos])
			require.NoError(t, err, "position %d", pos)
			require.Equal(t, c.marker(pos), e, "position %d is a marker", pos)
		} else if !bytes.Equal(orig[pos], got[pos]) {
			require.Equal(t, orig[pos], got[pos], "position %d keeps its entry's bytes", pos)
		}
	}
	// Every event, read through the offsets file the repair rebuilt.
	l, torn, err := Open(dir, Options{SegmentSize: repairSegmentSize, TrustPosition: head})
	require.NoError(t, err)
	require.Nil(t, torn)
	assert.Equal(t, 0, l.Stats().ScannedRecords, "the rebuilt offsets file vouches for every record")
	require.Equal(t, head, l.LastPosition())
	l.pread = true
	rd := l.NewReader()
	for pos := uint64(1); pos <= head; pos++ {
		e, err := rd.Event(pos)
		require.NoError(t, err, "position %d", pos)
		require.Equal(t, pos, e.Position)
		if isLost[pos] {
			require.Equal(t, c.marker(pos), e, "position %d is a marker", pos)
		} else if e.Lost || !bytes.Equal(orig[pos], appendEntryAs(nil, formatV3, pos, e.Event)) {
			require.Equal(t, dcb.SequencedEvent{Event: repairEvent(pos), Position: pos}, e, "position %d", pos)
		}
	}
	require.NoError(t, l.Close())
	vr, err := Verify(dir, nil)
	require.NoError(t, err)
	assert.Nil(t, vr.Damage)
	again, err := PlanRepair(dir, RepairOptions{Acknowledged: head})
	require.NoError(t, err)
	assert.Empty(t, again.Damaged, "a repaired log needs no repair")

	l = openLog(t, dir, Options{SegmentSize: repairSegmentSize})
	require.NoError(t, l.Append([]Record{{FirstPosition: head + 1, Events: []dcb.Event{repairEvent(head + 1)}}}))
	e, err := l.NewReader().Event(head + 1)
	require.NoError(t, err)
	assert.Equal(t, repairEvent(head+1), e.Event)
	require.NoError(t, l.Close())
	return rep
}

// entryBytesOf returns the stored entry of every position of the log in
// dir, read through the offset index of an opened log.
func entryBytesOf(t *testing.T, dir string, head uint64) map[uint64][]byte {
	t.Helper()
	l := openLog(t, dir, Options{SegmentSize: repairSegmentSize})
	defer l.Close()
	out := map[uint64][]byte{}
	rd := l.NewReader()
	l.mu.RLock()
	defer l.mu.RUnlock()
	for pos := uint64(1); pos <= head; pos++ {
		_, loc, seg, err := l.locateLocked(pos)
		require.NoError(t, err)
		version, entry, err := rd.readEntry(loc, seg, pos)
		require.NoError(t, err)
		require.Equal(t, byte(formatV3), version)
		out[pos] = entry
	}
	return out
}

// TestRepairTornTail: damage at the end of the last segment that nothing
// vouches for (no offsets file entry, no acknowledged position) is a torn
// tail: cut, no marker, as Open would; with the position acknowledged,
// the same damage loses exactly the damaged event.
func TestRepairTornTail(t *testing.T) {
	dir := t.TempDir()
	head := writeRepairLog(t, dir, 300, 10)
	layout := walLayout(t, dir)
	last := layout[len(layout)-1]
	path := filepath.Join(dir, last.seg)
	b := readFile(t, path)
	writeFile(t, path, b[:last.entries[4][1]]) // half of the last record
	require.NoError(t, os.Remove(filepath.Join(dir, offsetsName)))

	rep, err := Repair(dir, RepairOptions{})
	require.NoError(t, err)
	assert.Empty(t, rep.Lost)
	require.Len(t, rep.Damaged, 1)
	assert.Equal(t, last.entries[4][1]-last.entryOff, rep.Damaged[0].CutBytes)
	assert.Equal(t, head-10, rep.LastPosition)
	l := openLog(t, dir, Options{})
	assert.Equal(t, head-10, l.LastPosition())
	require.NoError(t, l.Close())

	// The same tail, acknowledged by a checkpoint: the half of the record
	// left verifies and is kept, the rest is lost, kept as markers.
	dir = t.TempDir()
	writeRepairLog(t, dir, 300, 10)
	path = filepath.Join(dir, last.seg)
	writeFile(t, path, readFile(t, path)[:last.entries[4][1]])
	require.NoError(t, os.Remove(filepath.Join(dir, offsetsName)))
	rep, err = Repair(dir, RepairOptions{Acknowledged: head})
	require.NoError(t, err)
	assert.Equal(t, []PositionRange{{From: head - 4, To: head}}, rep.Lost)
	assert.Equal(t, head, rep.LastPosition)
}

// TestRepairOldVersions: a damaged version 2 record (testdata/v2) keeps
// its intact events and loses the damaged one, rewritten as version 3 (its
// marker needs the flags) amid version 2 records; a damaged version 1
// record (testdata/v1) is repaired whole from its event files, or lost
// whole without them (its events have no checksums of their own).
func TestRepairOldVersions(t *testing.T) {
	for _, v := range []string{"v1", "v2"} {
		seg, err := os.ReadFile(filepath.Join("testdata", v, segmentName(1)))
		require.NoError(t, err)
		ref := t.TempDir()
		writeFile(t, filepath.Join(ref, segmentName(1)), seg)
		l := openLog(t, ref, Options{})
		var want []dcb.SequencedEvent
		for pos := uint64(1); pos <= 4; pos++ {
			e, err := l.NewReader().Event(pos)
			require.NoError(t, err)
			want = append(want, e)
		}
		require.NoError(t, l.Close())
		copyOf := func(pos uint64) (dcb.Event, bool) { return want[pos-1].Event, true }
		ents := segmentEntries(t, filepath.Join(ref, segmentName(1)))
		// A byte of the second record's last event: its data or type.
		at := ents[1].end() - 3

		for _, withCopies := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, event files %v", v, withCopies), func(t *testing.T) {
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, segmentName(1)), seg)
				flipBit(t, filepath.Join(dir, segmentName(1)), at)
				opts := RepairOptions{Acknowledged: 4}
				if withCopies {
					opts.Copy = copyOf
				}
				rep, err := Repair(dir, opts)
				require.NoError(t, err)
				var lost []uint64
				switch {
				case withCopies:
				case v == "v1":
					lost = []uint64{2, 3, 4} // the whole record
				default:
					lost = []uint64{4}
				}
				var got []uint64
				for _, r := range rep.Lost {
					got = append(got, positions(r.From, r.To)...)
				}
				assert.Equal(t, lost, got)
				for _, m := range readModes {
					l := openLogMode(t, dir, Options{}, m.pread)
					for _, pos := range []uint64{4, 1, 3, 2} {
						e, err := l.NewReader().Event(pos)
						require.NoError(t, err, "%s position %d", m.name, pos)
						if slices.Contains(lost, pos) {
							assert.Equal(t, dcb.SequencedEvent{Position: pos, Lost: true}, e, "%s position %d", m.name, pos)
						} else {
							assert.Equal(t, want[pos-1], e, "%s position %d", m.name, pos)
						}
					}
					require.NoError(t, l.Close())
				}
				b := readFile(t, filepath.Join(dir, segmentName(1)))
				assert.Equal(t, seg[:ents[1].off], b[:ents[1].off], "the intact record keeps its bytes")
				if withCopies {
					assert.Equal(t, seg, b, "repaired whole: the bytes written at first")
				}
			})
		}
	}
}

// noSyncFS is the operating system's FS without fsyncs: the damage table
// checks what a repair writes, not its durability, and fsyncs make it slow.
type noSyncFS struct{ vfs.FS }

type noSyncFile struct{ vfs.File }

func (noSyncFile) Sync() error { return nil }

func (f noSyncFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{file}, nil
}

func (noSyncFS) SyncDir(string) error { return nil }

// faultFS fails the n-th Rename (counting from 1) with errFault.
type faultFS struct {
	vfs.FS
	n, renames int
}

var errFault = errors.New("injected fault")

func (f *faultFS) Rename(a, b string) error {
	f.renames++
	if f.renames == f.n {
		return errFault
	}
	return f.FS.Rename(a, b)
}

// TestRepairInterrupted: a repair that fails half way (a rename refused)
// leaves every segment whole, old or new, and the offsets file aside; the
// store does not open on the stale offsets, and the next Repair, using the
// offsets kept aside, finishes with exactly the same loss.
func TestRepairInterrupted(t *testing.T) {
	dir := t.TempDir()
	head := writeRepairLog(t, dir, 2000, 10)
	layout := walLayout(t, dir)
	var want []uint64
	for _, s := range []damageSite{siteIn(layout, 1, 4), siteIn(layout, 3, 4)} {
		pos, e := s.event()
		flipBit(t, filepath.Join(dir, s.rec.seg), e[1]-5)
		want = append(want, pos)
	}
	// Renames: the offsets file aside, then the first segment's
	// replacement; the second segment's fails.
	_, err := Repair(dir, RepairOptions{Acknowledged: head, FS: &faultFS{FS: vfs.OS, n: 3}})
	require.ErrorIs(t, err, errFault)
	assert.NoFileExists(t, filepath.Join(dir, offsetsName))
	assert.FileExists(t, filepath.Join(dir, repairingName))
	_, _, err = Open(dir, Options{TrustPosition: head})
	require.ErrorIs(t, err, ErrCorrupt, "the second damage is still there")

	rep, err := Repair(dir, RepairOptions{Acknowledged: head})
	require.NoError(t, err)
	assert.Equal(t, ranges(want[1:]), rep.Lost, "the first damage was repaired by the first run")
	assert.NoFileExists(t, filepath.Join(dir, repairingName))
	l := openLog(t, dir, Options{TrustPosition: head})
	for _, pos := range want {
		e, err := l.NewReader().Event(pos)
		require.NoError(t, err)
		assert.True(t, e.Lost, "position %d", pos)
	}
	require.NoError(t, l.Close())
}

// TestRepairInterruptedAtTheEnd: a repair that rewrote every damaged
// segment but failed to put the new offsets file in place leaves a log that
// opens (scanning, without the stale offsets file); the next Repair finds
// nothing damaged and puts a right offsets file in place.
func TestRepairInterruptedAtTheEnd(t *testing.T) {
	dir := t.TempDir()
	head := writeRepairLog(t, dir, 2000, 10)
	s := siteIn(walLayout(t, dir), 1, 2)
	pos, e := s.event()
	flipBit(t, filepath.Join(dir, s.rec.seg), e[1]-5)
	// Renames: the offsets file aside, the segment's replacement, the new
	// offsets file, which fails.
	_, err := Repair(dir, RepairOptions{Acknowledged: head, FS: &faultFS{FS: vfs.OS, n: 3}})
	require.ErrorIs(t, err, errFault)
	assert.NoFileExists(t, filepath.Join(dir, offsetsName))

	l := openLog(t, dir, Options{})
	require.Equal(t, head, l.LastPosition())
	require.NoError(t, l.Close())
	rep, err := Repair(dir, RepairOptions{Acknowledged: head})
	require.NoError(t, err)
	assert.Empty(t, rep.Damaged)
	assert.True(t, rep.Written)
	assert.NoFileExists(t, filepath.Join(dir, repairingName))
	l = openLog(t, dir, Options{TrustPosition: head})
	assert.Equal(t, 0, l.Stats().ScannedRecords)
	got, err := l.NewReader().Event(pos)
	require.NoError(t, err)
	assert.True(t, got.Lost)
	require.NoError(t, l.Close())
}

// TestRepairMovesMarkersAside: leftover tidwall truncation markers, which
// Open refuses, are moved aside; nothing else changes.
func TestRepairMovesMarkersAside(t *testing.T) {
	dir := t.TempDir()
	head := writeRepairLog(t, dir, 500, 10)
	marker := filepath.Join(dir, segmentName(1)+".END")
	writeFile(t, marker, nil)
	_, _, err := Open(dir, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
	rep, err := Repair(dir, RepairOptions{Acknowledged: head})
	require.NoError(t, err)
	assert.Equal(t, []string{segmentName(1) + ".END"}, rep.Markers)
	assert.Empty(t, rep.Lost)
	assert.NoFileExists(t, marker)
	l := openLog(t, dir, Options{TrustPosition: head})
	assert.Equal(t, head, l.LastPosition())
	require.NoError(t, l.Close())
}

// TestRepairAcknowledgedBeyondTheLog: positions a checkpoint vouches for
// beyond the end of the log (its last segment lost with the offsets file)
// become markers at its end, in records of a size that can be written.
func TestRepairAcknowledgedBeyondTheLog(t *testing.T) {
	dir := t.TempDir()
	head := writeRepairLog(t, dir, 300, 10)
	acked := head + 2*maxMarkersPerRecord + 5
	rep, err := Repair(dir, RepairOptions{Acknowledged: acked})
	require.NoError(t, err)
	assert.Equal(t, []PositionRange{{From: head + 1, To: acked}}, rep.Lost)
	assert.Equal(t, acked, rep.LastPosition)
	assert.Equal(t, uint64(30+3), rep.Records)
	require.Len(t, rep.Damaged, 1)
	assert.Equal(t, []RecordRepair{{Record: 31, Records: 3, Offset: -1, First: head + 1, Last: acked, Whole: true,
		Reason: "its bytes are gone", Lost: []PositionRange{{From: head + 1, To: acked}}}}, rep.Damaged[0].Records)
	l := openLog(t, dir, Options{TrustPosition: acked})
	for _, pos := range []uint64{head, head + 1, head + maxMarkersPerRecord + 7, acked} {
		e, err := l.NewReader().Event(pos)
		require.NoError(t, err)
		assert.Equal(t, pos > head, e.Lost, "position %d", pos)
	}
	require.NoError(t, l.Append([]Record{{FirstPosition: acked + 1, Events: []dcb.Event{{Type: "A"}}}}))
	require.NoError(t, l.Close())
}

// TestRepairIntactLog: an intact log is left as it is, and reported whole.
func TestRepairIntactLog(t *testing.T) {
	dir := t.TempDir()
	head := writeRepairLog(t, dir, 500, 10)
	before := snapshot(t, dir)
	rep, err := Repair(dir, RepairOptions{Acknowledged: head})
	require.NoError(t, err)
	assert.False(t, rep.Written)
	assert.Empty(t, rep.Damaged)
	assert.Equal(t, head, rep.LastPosition)
	assert.Equal(t, uint64(50), rep.Records)
	assert.Equal(t, head, rep.Vouched)
	assert.Equal(t, before, snapshot(t, dir))
}

// TestRepairLostTailSegment: the last segment deleted: the offsets file
// vouches for its records, which become markers.
func TestRepairLostTailSegment(t *testing.T) {
	dir := t.TempDir()
	head := writeRepairLog(t, dir, 2000, 10)
	layout := walLayout(t, dir)
	last := layout[len(layout)-1].seg
	var want []uint64
	records := uint64(0)
	for _, r := range layout {
		if r.seg == last {
			want = append(want, positions(r.first, r.last())...)
			records++
		}
	}
	orig := entryBytes(t, dir)
	require.NoError(t, os.Remove(filepath.Join(dir, last)))
	rep := checkRepair(t, dir, head, orig, want, nil, nil, copies{known: true}, copies{known: true}.options())
	require.Len(t, rep.Damaged, 1)
	assert.True(t, rep.Damaged[0].Missing)
	// One range for the segment, not one line per record.
	assert.Equal(t, []RecordRepair{{Record: layout[len(layout)-int(records)].index, Records: records, Offset: -1,
		First: want[0], Last: head, Reason: "its bytes are gone", Whole: true, Lost: []PositionRange{{From: want[0], To: head}}}}, rep.Damaged[0].Records)
}

// TestRepairRandomDamage: random damage (bit flips, zeroed and garbled
// ranges, a deleted segment, the offsets file gone), one to three places at
// once, on a log of records of random sizes, some event files present:
// Repair never fails, the log it leaves opens at the same head, every event
// outside the records the damage hit reads back with its original bytes,
// and what it reports lost is exactly what reads as markers, all in records
// the damage hit. POSSUM_REPAIR_ROUNDS rounds (20 by default, 5 with
// -short), POSSUM_REPAIR_SEED the seed.
func TestRepairRandomDamage(t *testing.T) {
	rounds := testenv.Scaled(t, "POSSUM_REPAIR_ROUNDS", 20, 5)
	rng := newRepairRand(t)
	for round := range rounds {
		dir := t.TempDir()
		l := openLog(t, dir, Options{SegmentSize: 8 << 10, NoSync: true})
		pos := uint64(1)
		for pos <= 1500 {
			n := 1 + rng.IntN(30)
			if rng.IntN(10) == 0 {
				n = 200 + rng.IntN(200)
			}
			r := Record{FirstPosition: pos}
			for range n {
				r.Events = append(r.Events, repairEvent(pos))
				pos++
			}
			require.NoError(t, l.Append([]Record{r}))
		}
		require.NoError(t, l.Close())
		head := pos - 1
		layout := walLayout(t, dir)
		orig := entryBytes(t, dir)
		segs := segmentFiles(t, dir)
		require.Greater(t, len(segs), 4)

		hit := map[uint64]bool{} // positions of the records the damage hits
		hitRange := func(seg string, from, to int64) {
			for _, r := range layout {
				if r.seg == seg && r.entryOff < to && r.frameOff+r.frameLen > from {
					for p := r.first; p <= r.last(); p++ {
						hit[p] = true
					}
				}
			}
		}
		var what []string
		deleted := false
		for range 1 + rng.IntN(3) {
			seg := segs[rng.IntN(len(segs))]
			path := filepath.Join(dir, seg)
			b, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) || len(b) == 0 {
				continue // deleted, or the empty tail segment a roll left
			}
			require.NoError(t, err)
			switch k := rng.IntN(10); {
			case k < 4:
				at := rng.Int64N(int64(len(b)))
				b[at] ^= 1 << rng.IntN(8)
				hitRange(seg, at, at+1)
				what = append(what, fmt.Sprintf("flip %s@%d", seg, at))
			case k < 7:
				at := rng.Int64N(int64(len(b)))
				to := min(int64(len(b)), at+1+rng.Int64N(3000))
				clear(b[at:to])
				hitRange(seg, at, to)
				what = append(what, fmt.Sprintf("zero %s@%d..%d", seg, at, to))
			case k < 9:
				at := rng.Int64N(int64(len(b)))
				to := min(int64(len(b)), at+1+rng.Int64N(300))
				for i := at; i < to; i++ {
					b[i] = byte(rng.IntN(256))
				}
				hitRange(seg, at, to)
				what = append(what, fmt.Sprintf("garble %s@%d..%d", seg, at, to))
			default:
				if deleted || seg == segs[0] {
					continue
				}
				deleted = true
				require.NoError(t, os.Remove(path))
				hitRange(seg, 0, int64(len(b)))
				what = append(what, "delete "+seg)
				continue
			}
			writeFile(t, path, b)
		}
		if rng.IntN(3) == 0 {
			require.NoError(t, os.Remove(filepath.Join(dir, offsetsName)))
			what = append(what, "no offsets file")
		}
		present := map[uint64]bool{}
		for p := range hit {
			if rng.IntN(2) == 0 {
				present[p] = true
			}
		}
		opts := RepairOptions{Acknowledged: head, FS: noSyncFS{vfs.OS}, Copy: func(pos uint64) (dcb.Event, bool) {
			return repairEvent(pos), present[pos]
		}}
		desc := fmt.Sprintf("round %d: %s", round, strings.Join(what, ", "))
		rep, err := Repair(dir, opts)
		require.NoError(t, err, desc)
		assert.Equal(t, head, rep.LastPosition, desc)
		lost := map[uint64]bool{}
		for _, r := range rep.Lost {
			for p := r.From; p <= r.To; p++ {
				lost[p] = true
				require.True(t, hit[p], "%s: position %d lost outside the records hit", desc, p)
			}
		}
		got := entryBytesOf(t, dir, head)
		for p := uint64(1); p <= head; p++ {
			if lost[p] {
				e, err := decodeEntry(formatV3, p, got[p])
				require.NoError(t, err, desc)
				require.True(t, e.Lost, "%s: position %d", desc, p)
				continue
			}
			require.True(t, bytes.Equal(orig[p], got[p]), "%s: position %d keeps its entry's bytes", desc, p)
		}
		vr, err := Verify(dir, nil)
		require.NoError(t, err, desc)
		require.Nil(t, vr.Damage, desc)
	}
}

func newRepairRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("POSSUM_REPAIR_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (POSSUM_REPAIR_SEED)", seed)
	return rand.New(rand.NewPCG(seed, 1))
}
