package wal

import (
	"bufio"
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

// OffsetsFile is the name of the offsets file in a WAL's directory: the file
// a follower watches (see OpenFollower).
const OffsetsFile = offsetsName

func appendOffsetEntry(dst []byte, loc recordLoc, segFirst uint64) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, loc.firstPos)
	dst = binary.LittleEndian.AppendUint64(dst, segFirst)
	dst = binary.LittleEndian.AppendUint32(dst, loc.off)
	dst = binary.LittleEndian.AppendUint32(dst, loc.size)
	dst = binary.LittleEndian.AppendUint32(dst, loc.count)
	return binary.LittleEndian.AppendUint32(dst, uint32(xxhash.Sum64(dst[start:])))
}

// decodeOffsetEntry decodes one entry of the offsets file: where its
// record lives (seg unset) and the first entry index of its segment. ok is
// false when the entry's checksum fails or it counts no events.
func decodeOffsetEntry(e []byte) (loc recordLoc, segFirst uint64, ok bool) {
	if binary.LittleEndian.Uint32(e[28:]) != uint32(xxhash.Sum64(e[:28])) {
		return recordLoc{}, 0, false
	}
	loc = recordLoc{
		firstPos: binary.LittleEndian.Uint64(e[0:]),
		off:      binary.LittleEndian.Uint32(e[16:]),
		size:     binary.LittleEndian.Uint32(e[20:]),
		count:    binary.LittleEndian.Uint32(e[24:]),
	}
	return loc, binary.LittleEndian.Uint64(e[8:]), loc.count > 0
}

// offsetsFile is what the offsets file holds: its leading entries that
// check out (checksum, gap-free positions), split at the first that cannot
// be trusted.
type offsetsFile struct {
	// trusted: the leading entries that lie wholly at or below the trust
	// position and inside the segments as they are now, segments resolved.
	trusted []recordLoc
	// rest: the entries after them that check out, segments not resolved:
	// seg is unset and restSegs holds each one's segment name (the first
	// entry index of the segment).
	rest     []recordLoc
	restSegs []uint64
	// vouched: the last position the entries list. An entry is written only
	// after its record's fsync, so each one vouches that its record was
	// acknowledged.
	vouched uint64
}

// offsetsChunk is how many entries readOffsets reads at a time.
const offsetsChunk = 4096

// readOffsets reads the offsets file at path, streaming it. The entries
// lying wholly at or below trust, in segments segIndex and segSize describe
// (segIndex maps a segment's first entry index to its place in the segment
// list, segSize gives each segment's size), are resolved into trusted; the
// others that check out go to rest. A missing or foreign file has none.
func readOffsets(path string, trust uint64, segIndex map[uint64]uint32, segSize []int64) offsetsFile {
	var of offsetsFile
	f, err := os.Open(path)
	if err != nil {
		return of
	}
	defer f.Close()
	var header [offsetsHeaderSize]byte
	if _, err := io.ReadFull(f, header[:]); err != nil || string(header[:4]) != offsetsMagic ||
		binary.LittleEndian.Uint32(header[4:8]) != offsetsVersion {
		return of
	}
	if st, err := f.Stat(); err == nil && st.Size() > offsetsHeaderSize {
		of.trusted = make([]recordLoc, 0, (st.Size()-offsetsHeaderSize)/offsetsEntrySize)
	}
	buf := make([]byte, offsetsChunk*offsetsEntrySize)
	next := uint64(1)
	trusting := trust > 0
	for {
		n, err := io.ReadFull(f, buf)
		for b := buf[:n-n%offsetsEntrySize]; len(b) > 0; b = b[offsetsEntrySize:] {
			loc, segFirst, ok := decodeOffsetEntry(b[:offsetsEntrySize])
			if !ok || loc.firstPos != next {
				return of
			}
			if trusting {
				seg, ok := segIndex[segFirst]
				trusting = ok && loc.lastPos() <= trust && int64(loc.off)+int64(loc.size) <= segSize[seg]
				if trusting && len(of.trusted) > 0 {
					prev := of.trusted[len(of.trusted)-1]
					trusting = seg > prev.seg || (seg == prev.seg && loc.off > prev.off)
				}
				loc.seg = seg
			}
			if trusting {
				of.trusted = append(of.trusted, loc)
			} else {
				loc.seg = 0
				of.rest = append(of.rest, loc)
				of.restSegs = append(of.restSegs, segFirst)
			}
			next = loc.lastPos() + 1
			of.vouched = loc.lastPos()
		}
		if err != nil { // io.EOF, io.ErrUnexpectedEOF (a torn entry) or a read error
			return of
		}
	}
}

// sameAsFile returns how many leading entries of locs (the offset index
// load built) the offsets file already holds, byte for byte: the trusted
// ones, then those of rest that the scan found again.
func (of offsetsFile) sameAsFile(locs []recordLoc, segs []*segment) int {
	same := len(of.trusted)
	for i, loc := range of.rest {
		j := len(of.trusted) + i
		if j >= len(locs) {
			break
		}
		l := locs[j]
		if l.firstPos != loc.firstPos || l.count != loc.count || l.off != loc.off || l.size != loc.size ||
			segs[l.seg].first != of.restSegs[i] {
			break
		}
		same++
	}
	return min(same, len(locs))
}

// offsetsWriter appends entries to the offsets file.
type offsetsWriter struct {
	f   *os.File
	buf []byte
}

// openOffsets makes the offsets file hold exactly locs, of which the
// first same are already in it (sameAsFile): it writes the header (unless
// entries are kept) and the entries after them, and cuts what follows. On a
// clean reopen, it writes nothing.
func openOffsets(path string, locs []recordLoc, same int, segs []*segment) (*offsetsWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("wal: offsets: %w", err)
	}
	fail := func(err error) (*offsetsWriter, error) {
		f.Close()
		return nil, fmt.Errorf("wal: offsets: %w", err)
	}
	w := &offsetsWriter{f: f}
	at := int64(offsetsHeaderSize + same*offsetsEntrySize)
	if same == 0 {
		w.buf = append(w.buf, offsetsMagic...)
		w.buf = binary.LittleEndian.AppendUint32(w.buf, offsetsVersion)
		at = 0
	}
	for _, loc := range locs[same:] {
		w.buf = appendOffsetEntry(w.buf, loc, segs[loc.seg].first)
	}
	if len(w.buf) > 0 {
		if _, err := f.WriteAt(w.buf, at); err != nil {
			return fail(err)
		}
	}
	size := int64(offsetsHeaderSize + len(locs)*offsetsEntrySize)
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if st.Size() != size {
		if err := f.Truncate(size); err != nil {
			return fail(err)
		}
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return fail(err)
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
	s.rewind()
	return s
}

// rewind starts reading again from the first entry. A missing, unreadable
// or foreign file has none.
func (s *offsetsStream) rewind() {
	s.close()
	s.next, s.peek, s.done = 1, nil, true
	if s.left == 0 {
		return
	}
	f, err := os.Open(s.path)
	if err != nil {
		return
	}
	var header [offsetsHeaderSize]byte
	if _, err := io.ReadFull(f, header[:]); err != nil || string(header[:4]) != offsetsMagic ||
		binary.LittleEndian.Uint32(header[4:8]) != offsetsVersion {
		f.Close()
		return
	}
	s.f, s.r, s.done = f, bufio.NewReaderSize(f, offsetsChunk*offsetsEntrySize), false
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
func (s *offsetsStream) segments() (names []uint64, vouched uint64) {
	trusted := 0
	defer func() { s.left = trusted }()
	for {
		e, ok := s.entry()
		if !ok {
			return names, vouched
		}
		s.peek = nil
		if n := len(names); n == 0 || names[n-1] != e.segFirst {
			if n > 0 && e.segFirst < names[n-1] {
				return names, vouched
			}
			names = append(names, e.segFirst)
		}
		vouched = e.loc.lastPos()
		trusted++
	}
}
