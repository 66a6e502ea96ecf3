package wal

import (
	"errors"
	"fmt"
	"os"
	"sync"

	tidwall "github.com/tidwall/wal"
)

// DefaultSegmentSize is the size at which a segment is closed and a new one
// started, as in tidwall/wal.
const DefaultSegmentSize = 20 << 20

// MaxSegmentSize keeps every offset within a segment in 32 bits.
const MaxSegmentSize = 1 << 30

// Options configure a Log. The zero value is the durable default.
type Options struct {
	// SegmentSize: a segment is closed once it reaches this many bytes.
	// 0: DefaultSegmentSize.
	SegmentSize int
	// NoSync skips the fsync after each Append. A crash (of the machine, not
	// just the process) may then lose appends that were acknowledged.
	NoSync bool
	// TrustPosition: the records whose events all lie at or below this
	// position were verified before (a checkpoint vouches for them). Open
	// takes their locations from the offsets file instead of scanning them;
	// their checksums are still verified whenever they are read. 0: scan all.
	// A log that ends before TrustPosition lost acknowledged appends: Open
	// refuses it with a *LostError.
	TrustPosition uint64
	// SyncFile makes a segment's written bytes durable: its data and the
	// size that reaching them needs, not timestamps. nil: the platform's
	// (fdatasync on Linux, F_FULLFSYNC on darwin, FlushFileBuffers on
	// Windows). It is the log's fault seam: tests block or fail it.
	SyncFile func(*os.File) error
	// SyncDir makes the names of new segments in dir durable. nil: an
	// fsync of the directory. Tests count or fail it.
	SyncDir func(dir string) error
}

// OpenStats says how much of the log Open scanned.
type OpenStats struct {
	TrustedRecords int   // located through the offsets file, not read
	ScannedRecords int   // read and verified
	ScannedBytes   int64 // bytes of segment read by the scan
}

var (
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("wal: closed")
	// ErrPoisoned is wrapped, with the original error, by every Append after
	// a write or fsync failed. Reopen the log to go on.
	ErrPoisoned = errors.New("wal: poisoned by an earlier write failure; reopen to continue")
	// ErrNotFound: no record holds the requested position.
	ErrNotFound = errors.New("wal: position not in log")
)

// recordLoc says where one record lives. The slice of them is the offset
// index: binary search by position, then one positional read.
type recordLoc struct {
	firstPos uint64
	count    uint32
	seg      uint32 // index into Log.segs
	off      uint32 // offset of the frame (after tidwall's length prefix)
	size     uint32 // frame length
}

func (r recordLoc) lastPos() uint64 { return r.firstPos + uint64(r.count) - 1 }

type segment struct {
	first uint64 // tidwall index of its first entry
	path  string
	once  sync.Once
	f     *os.File // opened read-only on first read
	err   error

	mapped segmentMap // how reads see it where memory mapping is on
}

func (s *segment) file() (*os.File, error) {
	s.once.Do(func() { s.f, s.err = os.Open(s.path) })
	return s.f, s.err
}

// Log is a checksummed write-ahead log. Appending is split in two steps so
// that a writer can pipeline them: Write writes records without waiting for
// their fsync, Sync makes everything written so far durable and visible. Write
// is meant for one writer at a time and Sync for one syncer (each serialises
// its callers), and the two may run at the same time: the next records are
// written while the fsync of the previous ones runs. Append is Write then
// Sync. Reads are safe from any goroutine and see only durable records.
type Log struct {
	dir         string
	segmentSize int
	noSync      bool
	tw          *tidwall.Log
	stats       OpenStats // set by Open

	// The write state, guarded by wmu (taken by Write, Close, and briefly by
	// Sync to take what was written).
	wmu      sync.Mutex
	poisoned error
	closed   bool
	tailSize int64 // bytes in the tail segment, mirroring tidwall's rule for rolling
	scratch  tidwall.Batch
	buf      []byte
	written  uint64      // the last position written (durable or not)
	entries  uint64      // tidwall entries written
	pending  []recordLoc // records written and not yet synced, in order
	newSegs  bool        // a segment was created since the last Sync took the pending records

	// The sync state, guarded by smu, which Sync holds for the whole fsync
	// (one sync at a time) and Close takes before wmu.
	smu         sync.Mutex
	offsets     *offsetsWriter // nil once a write to it failed
	offsetsErr  error
	offsetsFile offsetsFile          // what load read of the offsets file, for Open
	syncFile    func(*os.File) error // Options.SyncFile
	syncDir     func(string) error   // Options.SyncDir

	// mu guards locs, segs and readsClosed for readers. locs holds the
	// durable records only (Sync appends to it); segs every segment, also
	// those created by records still pending (Write appends to it).
	mu   sync.RWMutex
	locs []recordLoc
	segs []*segment
	// locIndex speeds up the search of locs; maintained by readers.
	locIndex locIndex
	// readsClosed: Close has begun unmapping segments; a read gets
	// ErrClosed. Bytes are read through a mapping only under mu's read
	// lock with readsClosed false (see segmentMap).
	readsClosed bool
	// pread: read segments with positional reads only, never through a
	// memory mapping (set by tests to cover both paths; always where the
	// platform cannot map).
	pread bool

	// follower is set on a log opened by OpenFollower, which never writes.
	follower *follow
}

// Stats says how much of the log Open had to scan.
func (l *Log) Stats() OpenStats { return l.stats }

// OffsetsErr returns the error that made the log stop maintaining its
// offsets file, nil while it is maintained. Appends are not affected; the
// next Open scans more of the log.
func (l *Log) OffsetsErr() error {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.offsetsErr
}

// LastPosition returns the position of the last durable event in the log (the
// last one a Sync covered), 0 if none. Records written and not yet synced are
// not counted, nor readable.
func (l *Log) LastPosition() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.locs) == 0 {
		return 0
	}
	return l.locs[len(l.locs)-1].lastPos()
}

// Close closes the log, after the Sync in progress, if any. Records written
// and not synced are not made visible. Reads after Close fail.
func (l *Log) Close() error {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var err error
	if l.tw != nil {
		err = l.tw.Close()
		if l.poisoned != nil {
			err = nil // the failure was reported when it happened
		}
	}
	l.closeSegments()
	if l.follower != nil && l.follower.f != nil {
		l.follower.f.Close()
	}
	if cerr := l.offsets.close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: close: %w", err)
	}
	return nil
}

func (l *Log) closeSegments() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readsClosed = true
	for _, s := range l.segs {
		s.unmap()
		s.once.Do(func() { s.err = ErrClosed })
		if s.f != nil {
			s.f.Close()
		}
	}
}
