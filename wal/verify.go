package wal

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/storedir"
)

// Damage is the first place a WAL fails its checks.
type Damage struct {
	Segment string `json:"segment"` // segment file name
	Offset  int64  `json:"offset"`  // where the valid part of the segment ends
	Reason  string `json:"reason"`
	// Torn: a torn tail (nothing valid follows); cutting it loses no
	// acknowledged append but, at most, the last one. Otherwise the damage is
	// in the middle of the log and cutting there loses every later event.
	Torn bool `json:"torn"`
	// LostFrom..LostTo are the positions a cut at the damage would lose:
	// LostFrom is the first position after the valid part; LostTo the last
	// position of any valid record found after the damage (0: none found,
	// so only the damaged record itself, whose positions are unreadable).
	LostFrom uint64 `json:"lostFrom"`
	LostTo   uint64 `json:"lostTo"`
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Segments     int      `json:"segments"`
	Records      int      `json:"records"`      // valid records before any damage
	LastPosition uint64   `json:"lastPosition"` // of the valid part
	Damage       *Damage  `json:"damage,omitempty"`
	Markers      []string `json:"markers,omitempty"` // leftover .START/.END files
}

// Verify reads every segment in dir, checks every record's framing, checksum
// and position, and calls fn (if not nil) with each valid record in order
// (the record owns its bytes). It reads one segment at a time into one
// buffer: its memory is a segment's, whatever the log's length. It
// stops at the first damage and reports it, with the positions a cut there
// would lose. It never writes. An error from fn stops it and is returned.
func Verify(dir string, fn func(Record) error) (VerifyReport, error) {
	var rep VerifyReport
	firsts, markers, err := listSegments(dir)
	if err != nil {
		return rep, err
	}
	rep.Segments, rep.Markers = len(firsts), markers
	nextIndex, nextPos := uint64(1), uint64(1)
	var buf []byte // one segment's bytes, reused: decoded records own theirs
	for i, first := range firsts {
		name := segmentName(first)
		if first != nextIndex {
			rep.Damage = &Damage{Segment: name, Reason: fmt.Sprintf("segment starts at entry %d, expected %d (missing segment)", first, nextIndex), LostFrom: nextPos}
			rep.Damage.LostTo = lastValidPosition(dir, firsts[i:])
			return rep, nil
		}
		data, err := readSegment(filepath.Join(dir, name), buf)
		if err != nil {
			return rep, err
		}
		buf = data
		sc := scanSegment(data, uint32(i), 0, nextPos)
		for _, loc := range sc.locs {
			if fn != nil {
				r, err := DecodeFrame(data[loc.off : loc.off+loc.size])
				if err != nil {
					return rep, fmt.Errorf("%w (segment %s offset %d)", err, name, loc.off)
				}
				if err := fn(r); err != nil {
					return rep, err
				}
			}
			rep.Records++
			rep.LastPosition = loc.lastPos()
		}
		nextIndex += uint64(len(sc.locs))
		nextPos = rep.LastPosition + 1
		if d := sc.damage; d != nil {
			rep.Damage = &Damage{Segment: name, Offset: d.offset, Reason: d.reason, LostFrom: nextPos}
			rep.Damage.Torn = i == len(firsts)-1 && !d.resumes
			if !rep.Damage.Torn {
				rep.Damage.LostTo = max(lastValidAfter(data, int(d.offset)+1), lastValidPosition(dir, firsts[i+1:]))
			}
			return rep, nil
		}
	}
	return rep, nil
}

// lastValidPosition returns the last position of any valid record in the
// given segments (0: none).
func lastValidPosition(dir string, firsts []uint64) uint64 {
	last := uint64(0)
	for _, first := range firsts {
		if data, err := os.ReadFile(filepath.Join(dir, segmentName(first))); err == nil {
			last = max(last, lastValidAfter(data, 0))
		}
	}
	return last
}

// Cut makes the WAL in dir end where d says its valid part ends: the damaged
// segment is copied aside and truncated, every later segment and every
// leftover marker is moved aside (renamed *.broken.<time>), and the offsets
// file is removed (Open rebuilds it). Files and the directory are fsync'd.
// It returns the paths of what was kept aside. A cut at a damage that is not
// a torn tail loses the positions d reports: the caller decides.
func Cut(dir string, d *Damage, markers []string) ([]string, error) {
	var kept []string
	stamp := "." + storedir.BrokenSuffix()
	if d != nil {
		firsts, _, err := listSegments(dir)
		if err != nil {
			return nil, err
		}
		for _, first := range firsts {
			name := segmentName(first)
			switch {
			case name == d.Segment && d.Offset > 0:
				t, err := repairTail(dir, name, d.Offset, d.Reason)
				if err != nil {
					return kept, err
				}
				kept = append(kept, t.Copy)
			case name >= d.Segment:
				path := filepath.Join(dir, name)
				if err := os.Rename(path, path+stamp); err != nil {
					return kept, fmt.Errorf("wal: move aside %s: %w", name, err)
				}
				kept = append(kept, path+stamp)
			}
		}
	}
	for _, m := range markers {
		path := filepath.Join(dir, m)
		if err := os.Rename(path, path+stamp); err != nil {
			return kept, fmt.Errorf("wal: move aside %s: %w", m, err)
		}
		kept = append(kept, path+stamp)
	}
	if err := os.Remove(filepath.Join(dir, offsetsName)); err != nil && !os.IsNotExist(err) {
		return kept, fmt.Errorf("wal: %w", err)
	}
	return kept, syncDir(dir)
}
