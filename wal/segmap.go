package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// segmentMap is the memory mapping through which a segment is read, where
// the platform has one (canMap). A segment is mapped on its first read, at
// least the log's segment size long, so that a tail segment growing under
// its mapping is read without a new one; a read past the mapping (a batch
// that overran the segment size) maps the file again, larger. Every mapping
// made stays until the log's Close unmaps them all: a Reader may be reading
// through an older one.
//
// Safety against Close: bytes are read through a mapping only while the
// log's mu is read-locked and the log is open for reads (Log.readsClosed
// false); Close unmaps under the write lock. A read after Close gets
// ErrClosed, never a fault. Nothing truncates a segment while its log is
// open (a torn tail is cut by Open, before any read), so a mapped page that
// holds a published record never goes away under a reader.
type segmentMap struct {
	cur atomic.Pointer[[]byte] // the largest mapping, read without the lock below

	mu     sync.Mutex // guards the fields below; held while mapping
	all    [][]byte   // every mapping made, unmapped by Close
	failed bool       // mapping failed or the log closed: read with pread
}

// view returns bytes [off, off+n) of segment s, from its mapping, mapping it
// (again) when needed, with at least minSize bytes. nil: no mapping (the
// platform has none, mapping failed, or the log is closing); read the file.
// The caller holds the log's mu read-locked, and the bytes [off, off+n) were
// written: the slice aliases the mapping and is valid only under that lock.
func (s *segment) view(off int64, n int, minSize int) []byte {
	end := off + int64(n)
	if m := s.mapped.cur.Load(); m != nil && end <= int64(len(*m)) {
		return (*m)[off:end:end]
	}
	m := s.remap(end, minSize)
	if m == nil {
		return nil
	}
	return m[off:end:end]
}

// remap maps s at least end bytes long and returns the mapping, nil when it
// cannot.
func (s *segment) remap(end int64, minSize int) []byte {
	if !canMap {
		return nil
	}
	sm := &s.mapped
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if m := sm.cur.Load(); m != nil && end <= int64(len(*m)) {
		return *m // another reader mapped it meanwhile
	}
	if sm.failed {
		return nil
	}
	size := max(end, int64(minSize))
	if m := sm.cur.Load(); m != nil {
		size = max(size, 2*int64(len(*m)))
	}
	page := int64(os.Getpagesize())
	size = (size + page - 1) / page * page
	f, err := s.file()
	var m []byte
	if err == nil && size <= maxMapSize {
		m, err = mapFile(f, int(size))
	}
	if err != nil || m == nil {
		sm.failed = true
		return nil
	}
	sm.all = append(sm.all, m)
	sm.cur.Store(&m)
	return m
}

// maxMapSize bounds one mapping; a larger segment is read with pread.
const maxMapSize = 4 << 30

// unmap unmaps every mapping of s; later views of s return nil. The caller
// holds the log's mu write-locked: no reader is using a mapping.
func (s *segment) unmap() {
	sm := &s.mapped
	sm.mu.Lock()
	defer sm.mu.Unlock()
	sm.failed = true
	sm.cur.Store(nil)
	for _, m := range sm.all {
		_ = unmapFile(m)
	}
	sm.all = nil
}

// readEntryGuarded is readEntry, which reads through the segment's mapping
// when the log maps: a memory fault on the mapping (the file shrank under
// it: another process truncated the segment of a live log) is then an error
// wrapping ErrCorrupt, not a crash of the process. One guard per event, not
// per copy: it costs about as much as the copies.
func (r *Reader) readEntryGuarded(loc recordLoc, seg *segment, pos uint64) (version byte, entry []byte, err error) {
	if !r.l.maps() {
		return r.readEntry(loc, seg, pos)
	}
	defer faultIsCorrupt(debug.SetPanicOnFault(true), seg, int64(loc.off), &err)
	return r.readEntry(loc, seg, pos)
}

// faultIsCorrupt, deferred after debug.SetPanicOnFault(true) returned old,
// restores old and turns a memory fault on the mapping of seg, read at
// off, into *err wrapping ErrCorrupt; any other panic goes on.
func faultIsCorrupt(old bool, seg *segment, off int64, err *error) {
	debug.SetPanicOnFault(old)
	if p := recover(); p != nil {
		fault, ok := p.(interface{ Addr() uintptr })
		if !ok {
			panic(p)
		}
		*err = fmt.Errorf("%w: memory fault at %#x reading the mapping of segment %s offset %d (did the file shrink?)",
			ErrCorrupt, fault.Addr(), filepath.Base(seg.path), off)
	}
}

// copyMapped fills dst with the bytes of seg at off, copied out of its
// mapping under the log's read lock. mapped is false when seg has no
// mapping (read the file instead). A memory fault on the mapping is an error
// wrapping ErrCorrupt, as in readEntryGuarded.
func (l *Log) copyMapped(seg *segment, dst []byte, off int64) (mapped bool, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.readsClosed {
		return true, ErrClosed
	}
	m := seg.view(off, len(dst), l.segmentSize)
	if m == nil {
		return false, nil
	}
	return true, copyGuarded(seg, dst, m, off)
}

// copyGuarded copies m, the mapping of seg at off, to dst.
func copyGuarded(seg *segment, dst, m []byte, off int64) (err error) {
	defer faultIsCorrupt(debug.SetPanicOnFault(true), seg, off, &err)
	copy(dst, m)
	return nil
}
