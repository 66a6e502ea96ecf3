package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
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

// PositionRange is the positions From..To, both included: the range of
// the store's LOST file.
type PositionRange = storedir.Range

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
	// Kept lists the paths of what Repair kept aside: the damaged segments'
	// copies and the markers, each renamed <name>.broken.<time>.
	Kept []string `json:"kept,omitempty"`
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
	// Records is how many records this stands for: 1, or more where
	// records could not be told apart, or their bytes are all gone (a
	// missing segment): Record is the first of them.
	Records uint64 `json:"records"`
	// Offset is where its entry starts in the damaged segment; -1 when
	// its bytes are gone.
	Offset int64 `json:"offset"`
	// First and Last are its positions.
	First  uint64 `json:"first"`
	Last   uint64 `json:"last"`
	Reason string `json:"reason"`
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

// RepairingFile is the name, in a WAL's directory, of the offsets file an
// interrupted Repair left aside: while it is there, the log needs Repair
// run again to finish.
const RepairingFile = repairingName

func repairLog(dir string, opts RepairOptions, write bool) (*RepairReport, error) {
	if opts.FS == nil {
		opts.FS = vfs.OS
	}
	names, markers, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	// An interrupted repair left the offsets file aside: it still says
	// where the records of the segments it did not rewrite are.
	offsPath, interrupted := filepath.Join(dir, repairingName), true
	if _, err := os.Stat(offsPath); err != nil {
		offsPath, interrupted = filepath.Join(dir, offsetsName), false
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
	rw := &rewriter{dir: dir, fs: opts.FS, sal: &salvager{opts: opts}, stamp: "." + storedir.BrokenSuffix()}
	write = write && (len(damaged) > 0 || len(markers) > 0 || interrupted)
	if write {
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
	if !write {
		return rep, nil
	}
	for _, sr := range rep.Damaged {
		if sr.Copy != "" {
			rep.Kept = append(rep.Kept, sr.Copy)
		}
	}
	for _, m := range markers {
		path := filepath.Join(dir, m)
		if err := rw.fs.Rename(path, path+rw.stamp); err != nil {
			return nil, fmt.Errorf("wal: repair: move aside %s: %w", m, err)
		}
		rep.Kept = append(rep.Kept, path+rw.stamp)
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

// rewriter writes the repaired segments.
type rewriter struct {
	dir   string
	fs    vfs.FS
	sal   *salvager
	stamp string // ".broken.<time>", one per repair
	buf   []byte // the segment read, reused for the next
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
		records := it.entries()
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
				sr.add(rr)
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
			first = last + 1
		}
		reason := "its records cannot be told apart"
		if it.start < 0 {
			reason = "its bytes are gone"
		}
		sr.add(RecordRepair{Record: index, Records: records, Offset: it.start, First: it.first, Last: it.last, Whole: true,
			Reason: reason, Lost: []PositionRange{{From: it.first, To: it.last}}})
		index += records
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

// add adds rr to the damaged records, merged with the one before when both
// are whole records whose bytes are gone, every position lost (a missing
// segment is reported as one range, not record by record).
func (sr *SegmentRepair) add(rr RecordRepair) {
	rr.Records = max(rr.Records, 1)
	gone := func(r *RecordRepair) bool {
		return r.Whole && r.Offset < 0 && r.Kept == 0 && len(r.Repaired) == 0 && len(r.Lost) == 1 && r.Lost[0] == PositionRange{From: r.First, To: r.Last}
	}
	if n := len(sr.Records); n > 0 {
		if prev := &sr.Records[n-1]; gone(prev) && gone(&rr) && prev.Last+1 == rr.First && prev.Record+prev.Records == rr.Record && prev.Reason == rr.Reason {
			prev.Last, prev.Lost[0].To = rr.Last, rr.Last
			prev.Records += rr.Records
			return
		}
	}
	sr.Records = append(sr.Records, rr)
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
		data, err := readSegment(filepath.Join(rw.dir, name), rw.buf)
		rw.buf = data
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
