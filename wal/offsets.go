package wal

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/cespare/xxhash/v2"
)

// The offsets file (wal/offsets) persists the offset index, so that Open need
// not scan records a checkpoint already vouches for (Options.TrustPosition).
// It is derived data: written without fsync on every Append, trusted only up
// to TrustPosition and only as far as each entry checks out, and rebuilt by
// scanning whatever it does not cover.
//
//	header: "POFF" then format version, little-endian uint32 (8 bytes)
//	entry, one per record, in record order (32 bytes, little-endian):
//	  0  8  position of the record's first event
//	  8  8  first entry index of its segment (the segment file's name)
//	  16 4  offset of the frame in the segment
//	  20 4  frame length
//	  24 4  number of events
//	  28 4  low 32 bits of xxhash64 of bytes [0,28)
const (
	offsetsName       = "offsets"
	offsetsMagic      = "POFF"
	offsetsHeaderSize = 8
	offsetsEntrySize  = 32
	offsetsVersion    = 1
)

func appendOffsetEntry(dst []byte, loc recordLoc, segFirst uint64) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, loc.firstPos)
	dst = binary.LittleEndian.AppendUint64(dst, segFirst)
	dst = binary.LittleEndian.AppendUint32(dst, loc.off)
	dst = binary.LittleEndian.AppendUint32(dst, loc.size)
	dst = binary.LittleEndian.AppendUint32(dst, loc.count)
	return binary.LittleEndian.AppendUint32(dst, uint32(xxhash.Sum64(dst[start:])))
}

// offsetsEntries reads the offsets file and returns its leading entries that
// check out (checksum, gap-free positions), segments not yet resolved: seg
// is unset and segFirsts holds each entry's segment name. A missing or
// foreign file has none.
func offsetsEntries(path string) (locs []recordLoc, segFirsts []uint64) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < offsetsHeaderSize || string(b[:4]) != offsetsMagic ||
		binary.LittleEndian.Uint32(b[4:8]) != offsetsVersion {
		return nil, nil
	}
	b = b[offsetsHeaderSize:]
	locs = make([]recordLoc, 0, len(b)/offsetsEntrySize)
	segFirsts = make([]uint64, 0, len(b)/offsetsEntrySize)
	next := uint64(1)
	for ; len(b) >= offsetsEntrySize; b = b[offsetsEntrySize:] {
		e := b[:offsetsEntrySize]
		if binary.LittleEndian.Uint32(e[28:]) != uint32(xxhash.Sum64(e[:28])) {
			break
		}
		loc := recordLoc{
			firstPos: binary.LittleEndian.Uint64(e[0:]),
			off:      binary.LittleEndian.Uint32(e[16:]),
			size:     binary.LittleEndian.Uint32(e[20:]),
			count:    binary.LittleEndian.Uint32(e[24:]),
		}
		if loc.firstPos != next || loc.count == 0 {
			break
		}
		locs = append(locs, loc)
		segFirsts = append(segFirsts, binary.LittleEndian.Uint64(e[8:]))
		next = loc.lastPos() + 1
	}
	return locs, segFirsts
}

// vouched returns the last position the entries list: an entry is written
// only after its record's fsync, so each one vouches that its record was
// acknowledged.
func vouched(locs []recordLoc) uint64 {
	if len(locs) == 0 {
		return 0
	}
	return locs[len(locs)-1].lastPos()
}

// trustedPrefix returns the leading entries that lie wholly at or below
// trust and inside the segments as they are now, with their segments
// resolved. segIndex maps a segment's first entry index to its place in the
// segment list, and segSize gives each segment's size.
func trustedPrefix(locs []recordLoc, segFirsts []uint64, trust uint64, segIndex map[uint64]uint32, segSize []int64) []recordLoc {
	for i := range locs {
		loc := &locs[i]
		seg, ok := segIndex[segFirsts[i]]
		if !ok || loc.lastPos() > trust || int64(loc.off)+int64(loc.size) > segSize[seg] {
			return locs[:i]
		}
		if i > 0 && (seg < locs[i-1].seg || (seg == locs[i-1].seg && loc.off <= locs[i-1].off)) {
			return locs[:i]
		}
		loc.seg = seg
	}
	return locs
}

// offsetsWriter appends entries to the offsets file.
type offsetsWriter struct {
	f   *os.File
	buf []byte
}

// openOffsets rewrites the offsets file to hold exactly locs.
func openOffsets(path string, locs []recordLoc, segs []*segment) (*offsetsWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("wal: offsets: %w", err)
	}
	w := &offsetsWriter{f: f}
	buf := make([]byte, 0, offsetsHeaderSize+offsetsEntrySize*len(locs))
	buf = append(buf, offsetsMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, offsetsVersion)
	for _, loc := range locs {
		buf = appendOffsetEntry(buf, loc, segs[loc.seg].first)
	}
	// Only bytes past the part that already matches need writing: on a clean
	// reopen, that is none.
	old := make([]byte, len(buf))
	n, _ := io.ReadFull(f, old)
	same := 0
	for same < n && old[same] == buf[same] {
		same++
	}
	same -= same % offsetsEntrySize // whole entries only; header is 8-aligned too
	if _, err := f.WriteAt(buf[same:], int64(same)); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: offsets: %w", err)
	}
	if err := f.Truncate(int64(len(buf))); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: offsets: %w", err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: offsets: %w", err)
	}
	return w, nil
}

func (w *offsetsWriter) append(locs []recordLoc, segs []*segment) error {
	w.buf = w.buf[:0]
	for _, loc := range locs {
		w.buf = appendOffsetEntry(w.buf, loc, segs[loc.seg].first)
	}
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("wal: offsets: %w", err)
	}
	return nil
}

func (w *offsetsWriter) close() error {
	if w == nil {
		return nil
	}
	return w.f.Close()
}
