package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/platform"
	tidwall "github.com/tidwall/wal"
)

// DefaultSegmentSize is the size at which a segment is closed and a new one
// started, as in tidwall/wal.
const DefaultSegmentSize = 20 << 20

// maxSegmentSize keeps every offset within a segment in 32 bits.
const maxSegmentSize = 1 << 30

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
	syncHook    func(*os.File) error // nil: syncFile; see SetSyncFile

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

	// v1Until: the records ending at or below it are version 1 frames (a
	// store written before version 2), read whole; set by Open.
	v1Until atomic.Uint64

	// follower is set on a log opened by OpenFollower, which never writes.
	follower *follow
}

// Open opens the log in dir, creating it if needed. A torn tail is cut back to
// the last valid record (the damaged segment is copied aside first) and
// reported; damage anywhere else is refused with a *CorruptionError.
func Open(dir string, opts Options) (*Log, *TornTail, error) {
	if opts.SegmentSize == 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.SegmentSize < 0 || opts.SegmentSize > maxSegmentSize {
		return nil, nil, fmt.Errorf("wal: segment size %d out of range (1..%d)", opts.SegmentSize, maxSegmentSize)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	l := &Log{dir: dir, segmentSize: opts.SegmentSize, noSync: opts.NoSync}
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
	v1, err := l.lastV1()
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	l.v1Until.Store(v1)
	l.written, l.entries = l.LastPosition(), uint64(len(l.locs))
	return l, torn, nil
}

// lastV1 returns the last position held by a version 1 record, 0 when none.
// Version 1 records all come before the version 2 ones (a store is upgraded
// once, and from then on written in version 2), so a binary search over the
// records' version bytes finds the boundary in a few reads.
func (l *Log) lastV1() (uint64, error) {
	var err error
	i := sort.Search(len(l.locs), func(i int) bool {
		loc := l.locs[i]
		f, ferr := l.segs[loc.seg].file()
		var v [1]byte
		if ferr == nil {
			_, ferr = f.ReadAt(v[:], int64(loc.off))
		}
		if ferr != nil && err == nil {
			err = fmt.Errorf("wal: read the version of the record at %d: %w", loc.firstPos, ferr)
		}
		return v[0] != formatV1
	})
	if err != nil || i == 0 {
		return 0, err
	}
	return l.locs[i-1].lastPos(), nil
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

// Append writes records as consecutive WAL entries with one write and, unless
// NoSync, one fsync, and returns once they are durable: Write, then Sync.
// Their positions must continue the log gap-free. Any failure poisons the
// log: this and every later Append return an error wrapping ErrPoisoned and
// the cause.
func (l *Log) Append(recs []Record) error {
	if err := l.Write(recs); err != nil {
		return err
	}
	_, err := l.Sync()
	return err
}

// Write writes records as consecutive WAL entries with one write, without
// waiting for an fsync: they become durable, readable and counted by
// LastPosition with the next Sync. Their positions must continue the written
// log gap-free. A record that cannot be encoded fails Write with nothing
// written; any other failure poisons the log: this and every later Write and
// Sync return an error wrapping ErrPoisoned and the cause, and the records
// written before it and not yet synced are never made visible.
func (l *Log) Write(recs []Record) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.follower != nil {
		return errors.New("wal: a follower does not append")
	}
	if l.poisoned != nil {
		return l.poisoned
	}
	next := l.written + 1
	l.scratch.Clear()
	index := l.entries + 1
	frames := make([]int, 0, len(recs)) // frame end offsets in l.buf
	l.buf = l.buf[:0]
	for i, r := range recs {
		if r.FirstPosition != next || len(r.Events) == 0 {
			return fmt.Errorf("wal: record %d starts at position %d with %d events, expected position %d", i, r.FirstPosition, len(r.Events), next)
		}
		var err error
		if l.buf, err = AppendFrame(l.buf, r); err != nil {
			return err // nothing written: the log stays usable
		}
		frames = append(frames, len(l.buf))
		next += uint64(len(r.Events))
	}
	if len(recs) == 0 {
		return nil
	}
	start := 0
	for i, end := range frames {
		l.scratch.Write(index+uint64(i), l.buf[start:end])
		start = end
	}
	if err := l.tw.WriteBatch(&l.scratch); err != nil {
		return l.poisonLocked(err)
	}
	// Mirror tidwall's segment rolling to learn where each frame landed.
	// tidwall fsyncs every segment it rolls away from (so what was written
	// there before, pending or not, is durable); the new segment's directory
	// entry is Sync's job.
	seg := uint32(len(l.segs) - 1)
	var newSegs []*segment
	roll := func(first uint64) {
		newSegs = append(newSegs, &segment{first: first, path: filepath.Join(l.dir, segmentName(first))})
		seg++
		l.tailSize = 0
	}
	if l.tailSize > int64(l.segmentSize) {
		roll(index)
	}
	start = 0
	for i, end := range frames {
		size := end - start
		prefix := int64(uvarintLen(uint64(size)))
		l.pending = append(l.pending, recordLoc{
			firstPos: recs[i].FirstPosition,
			count:    uint32(len(recs[i].Events)),
			seg:      seg,
			off:      uint32(l.tailSize + prefix),
			size:     uint32(size),
		})
		l.tailSize += prefix + int64(size)
		if l.tailSize >= int64(l.segmentSize) {
			roll(index + uint64(i) + 1)
		}
		start = end
	}
	if len(newSegs) > 0 {
		// Readers find records through locs, so a segment no durable
		// record lives in yet is harmless to them.
		l.mu.Lock()
		l.segs = append(l.segs, newSegs...)
		l.mu.Unlock()
		l.newSegs = true
	}
	l.written = next - 1
	l.entries += uint64(len(recs))
	return nil
}

// Sync makes every record written before it durable (unless NoSync) and
// visible: readable, and counted by LastPosition, which it returns. One fsync
// of the tail segment covers every record written since the last Sync; Write
// may go on meanwhile, and what it writes waits for the next Sync. With
// nothing written since the last Sync it returns at once. A failure poisons
// the log: the records this Sync covered are never made visible, and this
// and every later Write and Sync return an error wrapping ErrPoisoned and the
// cause (an fsync is never retried).
func (l *Log) Sync() (uint64, error) {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.wmu.Lock()
	if l.closed {
		l.wmu.Unlock()
		return 0, ErrClosed
	}
	if l.poisoned != nil {
		l.wmu.Unlock()
		return 0, l.poisoned
	}
	pending, newSegs := l.pending, l.newSegs
	l.pending, l.newSegs = nil, false
	tail := l.segs[len(l.segs)-1]
	l.wmu.Unlock()
	if len(pending) == 0 {
		return l.LastPosition(), nil
	}
	if !l.noSync {
		// tidwall synced every segment it rolled away from; the tail, as it
		// was when the pending records were taken, is ours. A record
		// written after that is not covered, nor claimed.
		sync := syncFile
		if l.syncHook != nil {
			sync = l.syncHook
		}
		f, err := tail.file()
		if err == nil {
			err = sync(f)
		}
		if err != nil {
			return 0, l.poison(fmt.Errorf("wal: fsync %s: %w", filepath.Base(tail.path), err))
		}
	}
	if newSegs {
		// tidwall creates segments without syncing the directory: without
		// this, a power loss could take an acknowledged segment with it.
		if err := syncSegmentDir(l.dir); err != nil {
			return 0, l.poison(err)
		}
	}
	l.mu.Lock()
	l.locs = append(l.locs, pending...)
	segs := l.segs
	last := l.locs[len(l.locs)-1].lastPos()
	l.mu.Unlock()
	if l.offsets != nil {
		if err := l.offsets.append(pending, segs); err != nil {
			// The records are durable; only the derived offsets file failed.
			// Stop maintaining it: the next Open trusts it as far as its
			// entries check out and scans the rest.
			l.offsetsErr = err
			l.offsets.close()
			l.offsets = nil
		}
	}
	return last, nil
}

// syncFile makes a segment's written bytes durable: the data and the size
// that reaching it needs, not timestamps (fdatasync on Linux, F_FULLFSYNC on
// darwin, FlushFileBuffers on Windows). Tests replace it to inject fsync
// failures.
var syncFile = platform.DataSync

// syncSegmentDir makes the names of new segments durable; tests replace it
// to see when it is called.
var syncSegmentDir = syncDir

// SetSyncFile replaces, for tests of the packages above, the function with
// which Sync fsyncs the tail segment (nil: the platform's), to block or fail
// it. It waits for a Sync in progress.
func (l *Log) SetSyncFile(sync func(*os.File) error) {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.syncHook = sync
}

// poison poisons the log with err, unless it already is; it returns the
// poisoning error.
func (l *Log) poison(err error) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.poisonLocked(err)
}

// poisonLocked is poison with wmu held.
func (l *Log) poisonLocked(err error) error {
	if l.poisoned == nil {
		l.poisoned = fmt.Errorf("%w: %w", ErrPoisoned, err)
	}
	l.pending = nil
	return l.poisoned
}

func uvarintLen(x uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], x)
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

// locate returns the location of the record holding pos.
func (l *Log) locate(pos uint64) (recordLoc, *segment, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, loc, seg, err := l.locateLocked(pos)
	return loc, seg, err
}

// locateLocked is locate, also returning the record's index, for a caller
// holding l.mu read-locked.
func (l *Log) locateLocked(pos uint64) (int, recordLoc, *segment, error) {
	if l.readsClosed {
		return 0, recordLoc{}, nil, ErrClosed
	}
	i := l.locIndex.find(l.locs, pos)
	if pos == 0 || i == len(l.locs) {
		return 0, recordLoc{}, nil, fmt.Errorf("%w: %d", ErrNotFound, pos)
	}
	loc := l.locs[i]
	return i, loc, l.segs[loc.seg], nil
}

// maps reports whether l reads its segments through memory mappings.
func (l *Log) maps() bool { return canMap && !l.pread }

// ReadRecord returns the record holding position pos, verified against its
// checksum.
func (l *Log) ReadRecord(pos uint64) (Record, error) {
	return l.NewReader().Record(pos)
}

// Reader reads records and events for one goroutine.
//
// Events (Event) of version 2 records are read alone: the two offsets
// bounding the event's entry and the entry, copied out of the segment's
// memory mapping (no syscall) into memory the event then owns, verified
// against the entry's own checksum, decoded in place. Where segments are not
// mapped, scattered events are read so with two positional reads, while a
// run of adjacent events reads their records whole, as Record does.
//
// Records (Record, and events of version 1 records) are read whole with
// positional reads: in order, reading ahead in growing chunks (a full scan
// costs one read per megabyte); scattered, each one exactly. It keeps the
// last record's verified frame, so the events of one record cost one read and
// one checksum. The zero Reader is not usable; see NewReader.
type Reader struct {
	l        *Log
	cur      recordLoc // the record whose frame is held
	have     bool
	frameHdr recordHeader
	rec      *Record // the decoded record, once asked for
	chunk    []byte  // read-ahead bytes of segment chunkSeg from chunkOff
	chunkSeg uint32
	chunkOff int64
	ahead    int // current read-ahead size; 0 reads records exactly

	last uint64 // the position of the last event asked for
	run  int    // how many events in a row were next to the one before

	// The record of the last event read alone, and its index in the log's
	// records: the next event read alone is looked for there, then next to
	// it, before a search.
	alone    recordLoc
	aloneIdx int
	aloneSeg *segment // nil: none yet
	slot     [8]byte  // scratch for the offsets bounding an entry
}

// scanRun is how many events in a row, each next to the one before, make a
// Reader read whole records (with read-ahead) instead of events alone, where
// segments are read with positional reads.
const scanRun = 16

// NewReader returns a Reader of l.
func (l *Log) NewReader() *Reader { return &Reader{l: l} }

const (
	minReadAhead = 64 << 10
	maxReadAhead = 1 << 20
)

// Event returns the event at position pos, verified against its checksum.
// Its strings and data are its own (one allocation for all of them), shared
// with nothing, except when pos is in the record this Reader's Record
// returned last: the event is then that record's, not to be modified.
func (r *Reader) Event(pos uint64) (dcb.SequencedEvent, error) {
	if r.last != 0 && (pos == r.last+1 || pos+1 == r.last) {
		r.run++
	} else {
		r.run = 0
	}
	r.last = pos
	if !r.holds(pos) {
		l := r.l
		l.mu.RLock()
		i, loc, seg, err := r.locateLocked(pos)
		if err == nil && r.readsAlone(loc) {
			r.alone, r.aloneIdx, r.aloneSeg = loc, i, seg
			entry, err := r.readEntryGuarded(loc, seg, pos)
			l.mu.RUnlock()
			if err != nil {
				return dcb.SequencedEvent{}, err
			}
			return eventAlone(loc, seg, pos, entry)
		}
		l.mu.RUnlock()
		if err != nil {
			return dcb.SequencedEvent{}, err
		}
		if err := r.loadAt(loc, seg); err != nil {
			return dcb.SequencedEvent{}, err
		}
	}
	if r.rec != nil {
		return r.rec.Event(pos), nil
	}
	e, err := r.frameHdr.event(int(pos - r.cur.firstPos))
	if err != nil {
		return dcb.SequencedEvent{}, r.corrupt(err)
	}
	return dcb.SequencedEvent{Event: e, Position: pos, Timestamp: r.frameHdr.timestamp}, nil
}

// locateLocked finds the record holding pos as Log.locateLocked does,
// looking first at the record of the last event read alone and its
// neighbours (the next record of a scan). The caller holds l.mu read-locked.
func (r *Reader) locateLocked(pos uint64) (int, recordLoc, *segment, error) {
	l := r.l
	if r.aloneSeg != nil && !l.readsClosed {
		i := r.aloneIdx
		switch {
		case pos >= r.alone.firstPos && pos <= r.alone.lastPos():
			return i, r.alone, r.aloneSeg, nil
		case pos == r.alone.lastPos()+1 && i+1 < len(l.locs):
			i++
		case pos+1 == r.alone.firstPos && i > 0:
			i--
		default:
			i = -1
		}
		if i >= 0 && pos >= l.locs[i].firstPos && pos <= l.locs[i].lastPos() {
			return i, l.locs[i], l.segs[l.locs[i].seg], nil
		}
	}
	return l.locateLocked(pos)
}

// readsAlone reports whether the event of record loc is read alone, not with
// its whole record: the record is version 2, and the reads are not a scan
// (which reads records whole: one copy or read and one checksum per record),
// and, with positional reads, the record holds other events (a record of one
// event is one read either way). With mapped segments a record of one event
// is read alone even in a scan: it costs less than a frame.
func (r *Reader) readsAlone(loc recordLoc) bool {
	if loc.lastPos() <= r.l.v1Until.Load() {
		return false
	}
	if r.l.maps() {
		return r.run < scanRun || loc.count == 1
	}
	return r.run < scanRun && loc.count > 1
}

// eventAlone verifies entry, the copy readEntry made of the entry of the
// event at pos in record loc, against its own checksum and decodes it. An
// event is so read alone, without the record's other events: the two
// offsets bounding its entry, then the entry (under the log's read lock),
// then this (after it).
func eventAlone(loc recordLoc, seg *segment, pos uint64, entry []byte) (dcb.SequencedEvent, error) {
	if err := checkEntry(pos, entry); err != nil {
		return dcb.SequencedEvent{}, entryCorrupt(loc, seg, err)
	}
	e, err := decodeEntry(pos, entry)
	if err != nil {
		return dcb.SequencedEvent{}, entryCorrupt(loc, seg, err)
	}
	return e, nil
}

func entryCorrupt(loc recordLoc, seg *segment, err error) error {
	return fmt.Errorf("%w: %v (segment %s offset %d)", ErrCorrupt, err, filepath.Base(seg.path), loc.off)
}

// readEntry returns a copy of the entry of the event at pos in its version 2
// record loc, not yet verified. The event keeps the copy: its strings and
// data alias it. The caller holds the log's mu read-locked.
func (r *Reader) readEntry(loc recordLoc, seg *segment, pos uint64) ([]byte, error) {
	if r.l.readsClosed {
		return nil, ErrClosed
	}
	i := int64(pos - loc.firstPos)
	payload, payloadLen := int64(loc.off)+frameHeaderSize, int64(loc.size)-frameHeaderSize
	entries := int64(v2PayloadHeader) + 4*int64(loc.count) // where the first entry starts
	var start, end int64
	if i == 0 {
		if err := r.readAt(seg, r.slot[:4], payload+v2PayloadHeader); err != nil {
			return nil, err
		}
		start, end = entries, int64(binary.LittleEndian.Uint32(r.slot[:4]))
	} else {
		if err := r.readAt(seg, r.slot[:8], payload+v2PayloadHeader+4*(i-1)); err != nil {
			return nil, err
		}
		start, end = int64(binary.LittleEndian.Uint32(r.slot[:4])), int64(binary.LittleEndian.Uint32(r.slot[4:]))
	}
	if start < entries || end < start+v2EntryHeader || end > payloadLen || end-start > MaxRecordSize {
		return nil, entryCorrupt(loc, seg, fmt.Errorf("entry of position %d at [%d,%d) out of place in a %d-byte payload", pos, start, end, payloadLen))
	}
	entry := make([]byte, end-start)
	if err := r.readAt(seg, entry, payload+start); err != nil {
		return nil, err
	}
	return entry, nil
}

// readAt fills b with the bytes of seg at off: copied from its mapping, or
// read from its file. The caller holds the log's mu read-locked, runs under
// readEntryGuarded, and the bytes were written (they belong to a published
// record).
func (r *Reader) readAt(seg *segment, b []byte, off int64) error {
	if r.l.maps() {
		if m := seg.view(off, len(b), r.l.segmentSize); m != nil {
			copy(b, m) // a fault here is caught by readEntryGuarded
			return nil
		}
	}
	f, err := seg.file()
	if err != nil {
		return fmt.Errorf("wal: open segment: %w", err)
	}
	if n, err := f.ReadAt(b, off); n < len(b) {
		return fmt.Errorf("wal: read segment %s offset %d: %w", filepath.Base(seg.path), off, closedAs(err))
	}
	return nil
}

// closedAs returns ErrClosed for the error of a read from a segment file the
// log's Close closed, err otherwise.
func closedAs(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Record returns the record holding position pos. The caller must not
// modify it.
func (r *Reader) Record(pos uint64) (Record, error) {
	if err := r.load(pos); err != nil {
		return Record{}, err
	}
	if r.rec == nil {
		rec := Record{FirstPosition: r.cur.firstPos, Timestamp: r.frameHdr.timestamp, Events: make([]dcb.Event, r.cur.count)}
		for i := range rec.Events {
			e, err := r.frameHdr.event(i)
			if err != nil {
				return Record{}, r.corrupt(err)
			}
			rec.Events[i] = e
		}
		r.rec = &rec
	}
	return *r.rec, nil
}

func (r *Reader) corrupt(err error) error {
	return fmt.Errorf("%w: %v (segment %s offset %d)", ErrCorrupt, err, segmentName(r.l.segmentFirst(r.cur.seg)), r.cur.off)
}

// load makes the record holding pos the held one, reading and verifying it
// unless it already is.
func (r *Reader) load(pos uint64) error {
	if r.holds(pos) {
		return nil
	}
	loc, seg, err := r.l.locate(pos)
	if err != nil {
		return err
	}
	return r.loadAt(loc, seg)
}

// holds reports whether the held record holds pos.
func (r *Reader) holds(pos uint64) bool {
	return r.have && pos >= r.cur.firstPos && pos <= r.cur.lastPos()
}

// loadAt makes the record at loc the held one, reading and verifying it.
func (r *Reader) loadAt(loc recordLoc, seg *segment) error {
	sequential := r.have && loc.seg == r.cur.seg && loc.off == r.cur.off+r.cur.size+uint32(uvarintLen(uint64(loc.size)))
	switch {
	case !sequential:
		r.ahead = 0
	case r.ahead == 0:
		r.ahead = minReadAhead
	case r.ahead < maxReadAhead:
		r.ahead *= 2
	}
	r.have, r.rec = false, nil
	frame, err := r.frame(loc, seg)
	if err != nil {
		return err
	}
	where := func(err error) error {
		return fmt.Errorf("%w: %v (segment %s offset %d)", ErrCorrupt, err, filepath.Base(seg.path), loc.off)
	}
	payload, err := checkFrame(frame)
	if err != nil {
		return where(err)
	}
	h, err := parseHeader(frame[0], payload)
	if err != nil {
		return where(err)
	}
	if h.first != loc.firstPos || len(h.events) != int(loc.count) {
		return fmt.Errorf("%w: record at segment %s offset %d holds positions %d..%d, expected %d..%d",
			ErrCorrupt, filepath.Base(seg.path), loc.off, h.first, h.first+uint64(len(h.events))-1, loc.firstPos, loc.lastPos())
	}
	r.cur, r.frameHdr, r.have = loc, h, true
	return nil
}

// frame returns the frame at loc. It stays valid until the next call.
func (r *Reader) frame(loc recordLoc, seg *segment) ([]byte, error) {
	off, end := int64(loc.off), int64(loc.off)+int64(loc.size)
	if loc.seg == r.chunkSeg && off >= r.chunkOff && end <= r.chunkOff+int64(len(r.chunk)) {
		return r.chunk[off-r.chunkOff : end-r.chunkOff], nil
	}
	if r.l.maps() {
		// A copy out of the mapping: no read-ahead to keep.
		if cap(r.chunk) < int(loc.size) {
			r.chunk = make([]byte, loc.size)
		}
		frame := r.chunk[:loc.size]
		r.chunk = r.chunk[:0]
		if mapped, err := r.l.copyMapped(seg, frame, off); mapped {
			return frame, err
		}
	}
	f, err := seg.file()
	if err != nil {
		return nil, fmt.Errorf("wal: open segment: %w", err)
	}
	n := max(int(loc.size), r.ahead)
	if cap(r.chunk) < n {
		r.chunk = make([]byte, n)
	}
	r.chunk = r.chunk[:n]
	got, err := f.ReadAt(r.chunk, off)
	if got < int(loc.size) {
		r.chunk = r.chunk[:0]
		return nil, fmt.Errorf("wal: read segment %s offset %d: %w", filepath.Base(seg.path), off, closedAs(err))
	}
	r.chunk, r.chunkSeg, r.chunkOff = r.chunk[:got], loc.seg, off
	frame := r.chunk[:loc.size]
	if r.ahead == 0 {
		// An exact read is not kept as read-ahead; its bytes stay valid
		// until the next read.
		r.chunk = r.chunk[:0]
	}
	return frame, nil
}

func (l *Log) segmentFirst(seg uint32) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[seg].first
}
