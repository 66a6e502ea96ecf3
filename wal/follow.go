package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// ErrChanged: the log a follower reads changed under it: positions it had
// read are gone or hold other records (the store was repaired with data
// loss, or replaced).
var ErrChanged = errors.New("wal: the log changed under its follower")

// follow is the state of a Log opened by OpenFollower: it learns the
// records the writer acknowledged from the offsets file, which the writer
// appends to after each fsync (see offsets.go), so it never sees a record
// that is not durable.
type follow struct {
	f        *os.File // the offsets file, nil until it exists
	consumed int64    // bytes of it turned into locs
	buf      []byte
	segIndex map[uint64]uint32 // segment name -> index into segs
}

// OpenFollower opens the log in dir for a process that reads what another
// process writes: it never writes, locks or repairs anything, and works on a
// read-only file system. It holds the records the offsets file lists (those
// the writer acknowledged); Refresh learns the newer ones. dir need not exist
// yet.
func OpenFollower(dir string) (*Log, error) {
	l := &Log{dir: dir, follower: &follow{segIndex: map[uint64]uint32{}}}
	if _, err := l.Refresh(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Refresh reads the offsets file entries the writer appended since the last
// call and returns the last position the log now holds. A notification that
// the file changed is a hint to call it; calling it without one is cheap (a
// stat and a read of what is new). It returns an error wrapping ErrChanged
// when positions it had read are gone or hold other records.
func (l *Log) Refresh() (uint64, error) {
	fw := l.follower
	l.wmu.Lock() // serialises Refresh and Close
	defer l.wmu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	path := filepath.Join(l.dir, offsetsName)
	if fw.f != nil {
		// Replaced or cut short (a repair, or a writer's Open rewriting
		// it): read it again from the start, checking what was read.
		st, err1 := os.Stat(path)
		fst, err2 := fw.f.Stat()
		if err1 != nil || err2 != nil || !os.SameFile(st, fst) || fst.Size() < fw.consumed || !fw.lastEntryHolds(l) {
			fw.f.Close()
			fw.f, fw.consumed = nil, 0
		}
	}
	if fw.f == nil {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return l.LastPosition(), nil // not yet written
		}
		if err != nil {
			return 0, fmt.Errorf("wal: follow: %w", err)
		}
		fw.f = f
	}
	if err := fw.read(l); err != nil {
		return 0, err
	}
	return l.LastPosition(), nil
}

// lastEntryHolds reports whether the last entry consumed is still in the
// file as it was read: an in-place rewrite that kept the size changes it.
func (fw *follow) lastEntryHolds(l *Log) bool {
	if fw.consumed <= offsetsHeaderSize {
		return true
	}
	var e [offsetsEntrySize]byte
	if _, err := fw.f.ReadAt(e[:], fw.consumed-offsetsEntrySize); err != nil {
		return false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	loc := l.locs[len(l.locs)-1]
	return string(appendOffsetEntry(nil, loc, l.segs[loc.seg].first)) == string(e[:])
}

// read turns the whole entries of the offsets file past fw.consumed into
// locs. From the start of the file, entries for positions already held
// must match them.
func (fw *follow) read(l *Log) error {
	st, err := fw.f.Stat()
	if err != nil {
		return fmt.Errorf("wal: follow: %w", err)
	}
	n := st.Size() - fw.consumed
	if n <= 0 {
		return nil
	}
	if int64(cap(fw.buf)) < n {
		fw.buf = make([]byte, n)
	}
	b := fw.buf[:n]
	got, err := fw.f.ReadAt(b, fw.consumed)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("wal: follow: %w", err)
	}
	b = b[:got]
	if fw.consumed == 0 {
		if len(b) < offsetsHeaderSize {
			return nil // being written
		}
		if string(b[:4]) != offsetsMagic || binary.LittleEndian.Uint32(b[4:8]) != offsetsVersion {
			return fmt.Errorf("wal: follow %s: not an offsets file of version %d", filepath.Join(l.dir, offsetsName), offsetsVersion)
		}
		b, fw.consumed = b[offsetsHeaderSize:], offsetsHeaderSize
	}
	l.mu.RLock()
	held := len(l.locs)
	l.mu.RUnlock()
	index := int((fw.consumed - offsetsHeaderSize) / offsetsEntrySize) // of the next entry
	var locs []recordLoc
	var segs []*segment
	next := l.LastPosition() + 1
	for ; len(b) >= offsetsEntrySize; b, index = b[offsetsEntrySize:], index+1 {
		e := b[:offsetsEntrySize]
		if binary.LittleEndian.Uint32(e[28:]) != uint32(xxhash.Sum64(e[:28])) {
			break // being written: read again next time
		}
		loc := recordLoc{
			firstPos: binary.LittleEndian.Uint64(e[0:]),
			off:      binary.LittleEndian.Uint32(e[16:]),
			size:     binary.LittleEndian.Uint32(e[20:]),
			count:    binary.LittleEndian.Uint32(e[24:]),
		}
		segFirst := binary.LittleEndian.Uint64(e[8:])
		if index < held {
			// Read before: it must be the same record.
			l.mu.RLock()
			old := l.locs[index]
			same := string(appendOffsetEntry(nil, old, l.segs[old.seg].first)) == string(e)
			l.mu.RUnlock()
			if !same {
				return fmt.Errorf("%w: the record of position %d is not the one read before", ErrChanged, old.firstPos)
			}
			fw.consumed += offsetsEntrySize
			continue
		}
		if loc.firstPos != next || loc.count == 0 {
			return fmt.Errorf("%w: offsets entry %d holds positions from %d, expected %d", ErrChanged, index, loc.firstPos, next)
		}
		seg, ok := fw.segIndex[segFirst]
		if !ok {
			seg = uint32(len(l.segs) + len(segs))
			fw.segIndex[segFirst] = seg
			segs = append(segs, &segment{first: segFirst, path: filepath.Join(l.dir, segmentName(segFirst))})
		}
		loc.seg = seg
		locs = append(locs, loc)
		next = loc.lastPos() + 1
		fw.consumed += offsetsEntrySize
	}
	if index < held {
		return fmt.Errorf("%w: the offsets file ends at entry %d, %d were read before (positions were lost)", ErrChanged, index, held)
	}
	l.mu.Lock()
	l.segs = append(l.segs, segs...)
	l.locs = append(l.locs, locs...)
	l.mu.Unlock()
	return nil
}
