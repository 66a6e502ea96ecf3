package wal

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/internal/sys/platform"
	tidwall "github.com/tidwall/wal"
)

// Open opens the log in dir, creating it if needed. A torn tail is cut back to
// the last valid record (the damaged segment is copied aside first) and
// reported; damage anywhere else is refused with a *CorruptionError.
func Open(dir string, opts Options) (*Log, *TornTail, error) {
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.SegmentSize < 0 || opts.SegmentSize > MaxSegmentSize {
		return nil, nil, fmt.Errorf("wal: segment size %d out of range (1..%d)", opts.SegmentSize, MaxSegmentSize)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	l := &Log{dir: dir, segmentSize: opts.SegmentSize, noSync: opts.NoSync, syncFile: opts.SyncFile, syncDir: opts.SyncDir}
	if l.syncFile == nil {
		l.syncFile = platform.DataSync
	}
	if l.syncDir == nil {
		l.syncDir = syncDir
	}
	torn, err := l.load(opts.TrustPosition)
	if err != nil {
		return nil, nil, err
	}
	tw, err := tidwall.Open(dir, &tidwall.Options{
		// possum fsyncs the tail segment itself (see Append): one seam for
		// fault injection, and the same one fsync per batch.
		NoSync:           true,
		SegmentSize:      opts.SegmentSize,
		SegmentCacheSize: 1,
		NoCopy:           true,
		DirPerms:         0o750,
		FilePerms:        0o640,
	})
	if err != nil {
		l.closeSegments()
		return nil, nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	l.tw = tw
	if last, err := tw.LastIndex(); err != nil || last != uint64(len(l.locs)) {
		l.Close()
		return nil, nil, fmt.Errorf("wal: open %s: tidwall sees %d entries, scan found %d (%v)", dir, last, len(l.locs), err)
	}
	if len(l.segs) == 0 {
		l.segs = append(l.segs, &segment{first: 1, path: filepath.Join(dir, segmentName(1))})
	}
	same := l.offsetsFile.sameAsFile(l.locs, l.segs)
	l.offsetsFile = offsetsFile{}
	if l.offsets, err = openOffsets(filepath.Join(dir, offsetsName), l.locs, same, l.segs); err != nil {
		l.Close()
		return nil, nil, err
	}
	l.written, l.entries = l.LastPosition(), uint64(len(l.locs))
	return l, torn, nil
}

// load builds the offset index: the records the offsets file vouches for
// (up to trust), then a scan verifying every record after them. A torn tail
// of the last segment is repaired.
func (l *Log) load(trust uint64) (*TornTail, error) {
	firsts, markers, err := listSegments(l.dir)
	if err != nil {
		return nil, err
	}
	if len(markers) > 0 {
		return nil, &CorruptionError{Segment: markers[0], Reason: "leftover truncation marker"}
	}
	segIndex := make(map[uint64]uint32, len(firsts))
	sizes := make([]int64, len(firsts))
	for i, first := range firsts {
		segIndex[first] = uint32(i)
		st, err := os.Stat(filepath.Join(l.dir, segmentName(first)))
		if err != nil {
			return nil, fmt.Errorf("wal: %w", err)
		}
		sizes[i] = st.Size()
		l.segs = append(l.segs, &segment{first: first, path: filepath.Join(l.dir, segmentName(first))})
	}
	// Whatever the offsets file or the caller's checkpoint vouch for must
	// still be in the log: a shorter log lost acknowledged appends.
	l.offsetsFile = readOffsets(filepath.Join(l.dir, offsetsName), trust, segIndex, sizes)
	vouch := lostBound{checkpoint: trust, offsets: l.offsetsFile.vouched}
	l.locs = l.offsetsFile.trusted
	l.stats.TrustedRecords = len(l.locs)

	// Resume scanning right after the last trusted record.
	startSeg, startOff := 0, int64(0)
	nextIndex, nextPos := uint64(1), uint64(1)
	if n := len(l.locs); n > 0 {
		last := l.locs[n-1]
		startSeg, startOff = int(last.seg), int64(last.off)+int64(last.size)
		nextIndex, nextPos = firsts[startSeg]+countInSeg(l.locs, last.seg), last.lastPos()+1
	}
	var torn *TornTail
	for i := startSeg; i < len(firsts); i++ {
		first, name := firsts[i], segmentName(firsts[i])
		off := int64(0)
		if i == startSeg {
			off = startOff
		} else if first != nextIndex {
			return nil, &CorruptionError{Segment: name, Reason: fmt.Sprintf("segment starts at entry %d, expected %d (missing segment)", first, nextIndex)}
		}
		data, err := readFrom(l.segs[i].path, off)
		if err != nil {
			return nil, err
		}
		sc := scanSegment(data, uint32(i), off, nextPos)
		l.stats.ScannedBytes += sizes[i] - off
		if d := sc.damage; d != nil {
			if i != len(firsts)-1 || d.resumes {
				return nil, &CorruptionError{Segment: name, Offset: d.offset, Reason: d.reason}
			}
			// Cut nothing that was acknowledged: refuse before repairing.
			last := nextPos - 1
			if n := len(sc.locs); n > 0 {
				last = sc.locs[n-1].lastPos()
			}
			if err := vouch.check(last); err != nil {
				return nil, err
			}
			if torn, err = repairTail(l.dir, name, d.offset, d.reason); err != nil {
				return nil, err
			}
		}
		l.locs = append(l.locs, sc.locs...)
		l.stats.ScannedRecords += len(sc.locs)
		l.tailSize = sc.size
		nextIndex = first + countInSeg(l.locs, uint32(i))
		if len(l.locs) > 0 {
			nextPos = l.locs[len(l.locs)-1].lastPos() + 1
		}
	}
	if err := vouch.check(nextPos - 1); err != nil {
		return nil, err
	}
	return torn, nil
}

// lostBound is what the log must reach: the positions a checkpoint and the
// offsets file vouch for.
type lostBound struct{ checkpoint, offsets uint64 }

// check returns a *LostError when a log ending at last falls short.
func (b lostBound) check(last uint64) error {
	if last >= max(b.checkpoint, b.offsets) {
		return nil
	}
	return &LostError{From: last + 1, To: max(b.checkpoint, b.offsets), Last: last, Checkpoint: b.checkpoint, Offsets: b.offsets}
}

// countInSeg counts the records of segment seg at the end of locs.
func countInSeg(locs []recordLoc, seg uint32) uint64 {
	n := uint64(0)
	for i := len(locs) - 1; i >= 0 && locs[i].seg == seg; i-- {
		n++
	}
	return n
}
