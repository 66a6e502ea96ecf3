package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
)

// The errors a caller of this package may branch on, with errors.Is. Next to
// them, dcb.ErrAppendConditionFailed, dcb.ErrInvalidEvent and
// dcb.ErrInvalidQuery. Every error the store returns that means one of these
// wraps it; no other package's error is part of the API.
var (
	// ErrClosed: the store was closed. Every operation that meets a closed
	// store (Append, Read, Subscribe, WaitProjected, including those running
	// when Close is called) reports it.
	ErrClosed = errors.New("store: closed")
	// ErrLocked: another writer (in this or another process), or a verify
	// or repair, holds the store directory.
	ErrLocked = storedir.ErrLocked
	// ErrCorrupt: the store's files are damaged: Open refuses a WAL with
	// damage that is not a torn tail, or that lost positions the checkpoint
	// or the offsets file vouch for; a Read meets a record that fails its
	// checksum. Run `possum recover --dry-run`, then `possum recover`: it
	// loses exactly the events whose bytes fail their checksums (none, when
	// the event files repair them), each position kept by a lost marker.
	ErrCorrupt = wal.ErrCorrupt
	// ErrPoisoned: a WAL write or fsync failed. The append that met it and
	// every later one fail with it; Close and Open the store again to go on
	// (an fsync error is never retried).
	ErrPoisoned = wal.ErrPoisoned
)

// Options configure a store. A nil *Options means the defaults.
type Options struct {
	// NoSync makes Append return before its WAL record is fsync'd. Faster,
	// and unsafe: a machine crash or power loss can then lose appends that
	// were acknowledged (a process crash alone loses nothing). Off by default.
	NoSync bool
	// SegmentSize is the WAL segment size in bytes, at most
	// MaxSegmentSize; 0: DefaultSegmentSize.
	SegmentSize int
	// Logger receives what Open repaired; nil: slog.Default().
	Logger *slog.Logger
	// MaxProjectionLag bounds, in events, how far the projection (the
	// event and index files other processes watch) may fall behind the
	// head: an Append that would take the lag beyond it waits for the
	// projector first (or until its context ends). Appends that start
	// waiting together may each pass once the lag drops, so the bound
	// can be exceeded by what concurrent callers append at that moment;
	// a single batch larger than the bound waits until the projection has
	// caught up. Reads never depend on the projection. 0: the default,
	// DefaultMaxProjectionLag; NoProjectionLagBound: no bound in events,
	// nor in time unless MaxProjectionDelay is set.
	MaxProjectionLag uint64
	// MaxProjectionDelay bounds the lag in time, which is what a consumer
	// watching the files feels: an Append waits, as for MaxProjectionLag,
	// while the projector would take longer than this to write the files
	// of the backlog the append leaves, at the rate it has been writing
	// them (Stats.ProjectionRate, measured over its recent work). The
	// bound in force is the smaller of the two (Stats.LagBound), so the
	// promise holds on a slow disk as on a fast one; until the projector
	// has measured its rate (a store just opened), MaxProjectionLag alone
	// applies. 0: DefaultMaxProjectionDelay; NoProjectionDelayBound: none.
	MaxProjectionDelay time.Duration
	// Projection chooses the files the projector writes for other
	// processes. nil: the store's recorded choice (a new store: every
	// file). A choice other than the recorded one is recorded and applied
	// by this Open: the files left out are removed, those added are
	// written in the background (Open then reads the whole WAL once).
	Projection *Projection
}

// Projection says which files a store materializes for other processes:
// the JSON file of each event, and the type and tag index files. Reads,
// Subscribe and condition checks use the WAL and the in-memory index
// whatever the choice; a store without index files rebuilds its in-memory
// index from the WAL when it opens after a crash, not only from a
// snapshot.
type Projection struct {
	EventFiles bool // events/<position>.json
	TypeIndex  bool // index/types/
	TagIndex   bool // index/tags/
}

// FullProjection returns the projection of a new store: every file.
func FullProjection() Projection { return Projection(projector.Everything) }

// DefaultSegmentSize is the WAL segment size when Options.SegmentSize is
// 0, and MaxSegmentSize the largest it may be (offsets within a segment
// are 32 bits).
const (
	DefaultSegmentSize = wal.DefaultSegmentSize
	MaxSegmentSize     = wal.MaxSegmentSize
)

// Validate reports what is wrong with o, nil when nothing is: Open calls it
// before it touches the directory. Every field but SegmentSize takes any
// value (see each one's zero value and its named special values).
func (o *Options) Validate() error {
	if o == nil {
		return nil
	}
	if o.SegmentSize < 0 || o.SegmentSize > MaxSegmentSize {
		return fmt.Errorf("store: Options.SegmentSize %d: want 1 to %d bytes, or 0 for the default %d", o.SegmentSize, MaxSegmentSize, DefaultSegmentSize)
	}
	return nil
}

// DefaultMaxProjectionLag is the projection lag bound in events when
// Options.MaxProjectionLag is 0: generous, so that bursts of appends run at
// the WAL's speed. It caps the backlog whatever the disk (what the next Open
// projects after a crash) and applies alone until the projector has
// measured its rate; the delay bound is what keeps file-watching consumers
// close on a slow disk.
const DefaultMaxProjectionLag = 1 << 20

// NoProjectionLagBound as Options.MaxProjectionLag lets the projection fall
// behind without limit in events, and in time too unless
// Options.MaxProjectionDelay is set.
const NoProjectionLagBound = ^uint64(0)

// DefaultMaxProjectionDelay is the projection lag bound in time when
// Options.MaxProjectionDelay is 0: file-watching consumers stay within
// about a minute of the head, at whatever rate this disk lets the
// projector write.
const DefaultMaxProjectionDelay = time.Minute

// NoProjectionDelayBound as Options.MaxProjectionDelay (any negative value
// does) leaves the lag bounded in events alone.
const NoProjectionDelayBound time.Duration = -1

// Store is an open event store. Its methods are safe for concurrent use.
type Store struct {
	dir   string
	opts  Options
	log   *slog.Logger
	lock  *os.File
	view  // idx, wal, head, quit: what reads need
	proj  *projector.Projector
	seams // fault seams: zero but in tests

	openReport OpenReport
	choice     projector.Choice // the files the projector writes

	// Group commit counters: WAL syncs, the appends they acknowledged, and
	// the time spent syncing.
	commits, committed atomic.Uint64
	commitNanos        atomic.Int64
	// Appends that waited for the projection lag, and for how long.
	lagWaits     atomic.Uint64
	lagWaitNanos atomic.Int64

	reqs       chan []*appendRequest // an Append's, or an AppendMany's in order
	writerDone chan struct{}
	poisoned   error // owned by the writer goroutine
	// Owned by the writer goroutine too: the events written and not yet
	// acknowledged, and a reader of the WAL, for retries (ids.go).
	inflight inflight
	idReader *wal.Reader

	// The groups the writer wrote, waiting for the syncer (see append.go).
	syncMu     sync.Mutex
	written    []*writtenGroup
	syncWake   chan struct{} // capacity 1: the writer added groups
	syncerDone chan struct{}
	flushReq   chan struct{} // the syncer asks the writer to write what waits
	flushed    chan struct{} // and the writer answers once it has
	// onWritten, when set (by tests, before their first Append), is called
	// by the writer with the last position of each group it wrote.
	onWritten func(last uint64)

	closeOnce sync.Once
	closeErr  error
}

// Open opens the store in dir, creating the directory when needed. It takes
// the directory's writer lock, repairs a torn WAL tail (logging what was cut)
// and refuses a WAL damaged anywhere else.
func Open(dir string, opts *Options) (*Store, error) { return open(dir, opts, seams{}) }

// seams are where tests inject faults (through export_test.go); their zero
// value is the real thing.
type seams struct {
	fs      vfs.FS               // under the projection; nil: vfs.OS
	walSync func(*os.File) error // fsyncs WAL segments; nil: the platform's
	// maxRecord bounds an append's WAL record below wal.MaxRecordSize,
	// so that tests of the bound need not build 64 MiB; 0: the real one.
	maxRecord int
}

// recordLimit is the largest WAL record an append may take, in bytes.
func (t seams) recordLimit() int {
	if t.maxRecord > 0 {
		return t.maxRecord
	}
	return wal.MaxRecordSize
}

// open is Open with fault seams.
func open(dir string, opts *Options, t seams) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxProjectionLag == 0 {
		o.MaxProjectionLag = DefaultMaxProjectionLag
	}
	switch {
	case o.MaxProjectionDelay < 0:
		o.MaxProjectionDelay = NoProjectionDelayBound
	case o.MaxProjectionDelay == 0 && o.MaxProjectionLag == NoProjectionLagBound:
		o.MaxProjectionDelay = NoProjectionDelayBound // no bound at all, as before there was a delay bound
	case o.MaxProjectionDelay == 0:
		o.MaxProjectionDelay = DefaultMaxProjectionDelay
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	lock, err := storedir.Lock(dir, true)
	if err != nil {
		return nil, err
	}
	s := &Store{
		dir:        dir,
		opts:       o,
		log:        o.Logger,
		lock:       lock,
		seams:      t,
		view:       newView(),
		reqs:       make(chan []*appendRequest),
		writerDone: make(chan struct{}),
		syncWake:   make(chan struct{}, 1),
		syncerDone: make(chan struct{}),
		flushReq:   make(chan struct{}),
		flushed:    make(chan struct{}),
	}
	if err := checkFormat(dir); err != nil {
		storedir.Unlock(lock)
		return nil, err
	}
	if err := s.chooseProjection(); err != nil {
		storedir.Unlock(lock)
		return nil, err
	}
	if err := s.load(); err != nil {
		if s.wal != nil {
			s.wal.Close()
		}
		storedir.Unlock(lock)
		return nil, err
	}
	s.proj.Start()
	go s.writer()
	go s.syncer()
	return s, nil
}

// FormatVersion is the store format this package writes, recorded in the
// file FORMAT of every store directory. Version 2 writes WAL records with a
// checksum per event; version 3 gives each event its own timestamp (set by
// the caller or the store) and an optional ID. A version 1 or 2 store is
// upgraded when it is opened (its records stay as they are and are read as
// before; later ones are version 3), so that an older possum then refuses it
// rather than take the new records for damage.
const FormatVersion = 3

// WALFormatVersion is the version of the WAL frames this package writes
// (see docs/FORMAT.md); it reads every version from 1 up to it.
const WALFormatVersion = wal.FormatVersion

var (
	formatCurrent = fmt.Sprintf("possum %d\n", FormatVersion)
	// formatsOlder are the older formats this possum reads, and upgrades
	// when it opens them to write.
	formatsOlder = []string{"possum 1\n", "possum 2\n"}
)

// readableFormat returns nil when this possum reads a store whose FORMAT
// file holds b (the current version or an older one), an error naming them
// otherwise.
func readableFormat(dir string, b []byte) error {
	if string(b) == formatCurrent || slices.Contains(formatsOlder, string(b)) {
		return nil
	}
	return fmt.Errorf("store: %s: format %q, this possum reads formats 1 to %d", dir, strings.TrimSpace(string(b)), FormatVersion)
}

// checkFormat writes the FORMAT file of a new store, upgrades an older
// store, and refuses a store of another format.
func checkFormat(dir string) error {
	path := filepath.Join(dir, storedir.FormatFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && !slices.Contains(formatsOlder, string(b)):
		return readableFormat(dir, b)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("store: %w", err)
	}
	// A new store, or an older store to upgrade.
	if err := vfs.WriteFileDurably(vfs.OS, path, path+".tmp", []byte(formatCurrent), 0o640); err != nil {
		return fmt.Errorf("store: %s: %w", dir, err)
	}
	return nil
}

// chooseProjection records Options.Projection when it differs from the
// store's choice, and sets s.choice.
func (s *Store) chooseProjection() error {
	fs := s.fs
	if fs == nil {
		fs = vfs.OS
	}
	recorded, err := projector.ReadChoice(s.dir)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.dir, err)
	}
	s.choice = recorded
	if s.opts.Projection == nil {
		return nil
	}
	want := projector.Choice(*s.opts.Projection)
	changed, err := projector.ChangeChoice(fs, s.dir, want)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.dir, err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, storedir.WALDir)); changed && err == nil {
		s.log.Info("possum: changing the projection", "dir", s.dir, "from", recorded.String(), "to", want.String())
	}
	s.choice = want
	return nil
}

// load opens the WAL, trusting what the checkpoint vouches for, and brings
// the projection and the in-memory index in step with it.
func (s *Store) load() error {
	cp, cpErr := storedir.ReadCheckpoint(s.dir)
	w, torn, err := wal.Open(filepath.Join(s.dir, storedir.WALDir), wal.Options{
		SegmentSize:   s.opts.SegmentSize,
		NoSync:        s.opts.NoSync,
		TrustPosition: cp.Position,
		SyncFile:      s.walSync,
	})
	var lost *wal.LostError
	if errors.As(err, &lost) {
		return fmt.Errorf("store: open %s: %w (run `possum recover --dry-run %s` to see exactly which positions a repair keeps and loses, then `possum recover --allow-data-loss %s`: each lost position keeps its place as a lost marker, every other event its position and bytes)", s.dir, err, s.dir, s.dir)
	}
	if errors.Is(err, wal.ErrCorrupt) {
		return fmt.Errorf("store: open %s: %w (not a torn write: run `possum recover --dry-run %s` to see exactly which positions a repair keeps and loses, then `possum recover %s`, with --allow-data-loss if it must lose any: each lost position keeps its place as a lost marker, every other event its position and bytes)", s.dir, err, s.dir, s.dir)
	}
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.dir, err)
	}
	s.wal = w
	if torn != nil {
		s.log.Warn("possum: cut a torn WAL tail", "dir", s.dir, "segment", torn.Segment,
			"offset", torn.Offset, "dropped_bytes", torn.Dropped, "copy", torn.Copy, "reason", torn.Reason)
	}
	p, idx, rep, err := projector.Open(s.dir, w, projector.Config{Checkpoint: cp, CheckpointErr: cpErr, Choice: s.choice, Logger: s.log, FS: s.fs})
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.dir, err)
	}
	if rep.CheckpointProblem != "" || rep.IndexRebuilt != "" || rep.StrayEventFiles > 0 || rep.MissingEventFiles > 0 || len(rep.IndexDamaged) > 0 {
		s.log.Warn("possum: repairing the projection", "dir", s.dir, "checkpoint", rep.Checkpoint,
			"checkpoint_problem", rep.CheckpointProblem, "index_rebuilt", rep.IndexRebuilt,
			"index_damaged", rep.IndexDamaged, "stray_event_files", rep.StrayEventFiles,
			"missing_event_files", rep.MissingEventFiles)
	}
	s.proj, s.idx = p, idx
	s.openReport = OpenReport{WAL: WALReport(w.Stats()), Projection: ProjectionReport(rep)}
	if torn != nil {
		t := TornTail(*torn)
		s.openReport.TornTail = &t
	}
	s.head.Store(w.LastPosition())
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Head returns the last acknowledged position, 0 when the store is empty.
// It is in memory and never fails; on a closed store it returns the head
// at Close.
func (s *Store) Head() uint64 { return s.head.Load() }

// HeadContext is Head as Events has it, for code written against readers
// that may fail (a Follower, a client): ErrClosed on a closed store,
// ctx.Err() when ctx has ended, the head otherwise.
func (s *Store) HeadContext(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.closed() {
		return 0, ErrClosed
	}
	return s.head.Load(), nil
}

// Close stops the writer (appends still queued fail with ErrClosed), lets
// the appends already taken up complete, closes the WAL and releases the
// directory lock. Reads and subscriptions still
// running end with ErrClosed. Close is idempotent.
//
// Close does not wait for the projection backlog: the projector finishes the
// batch it is writing and checkpoints there, and the next Open projects the
// rest in the background (nothing is lost: the WAL holds every event). Call
// WaitProjected(ctx, Head()) first when the files must be complete.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.writerDone
		<-s.syncerDone
		s.closeErr = s.proj.Stop()
		if err := s.wal.Close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
		if err := storedir.Unlock(s.lock); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	})
	return s.closeErr
}

// publish makes head visible to reads, wakes subscribers and the projector.
func (s *Store) publish(head uint64) {
	s.view.publish(head)
	s.proj.Notify()
}

// OpenReport says what Open found: how much of the WAL it scanned and what it
// repaired.
type OpenReport struct {
	WAL        WALReport
	TornTail   *TornTail // nil: none
	Projection ProjectionReport
}

// WALReport says how much of the WAL Open read.
type WALReport struct {
	TrustedRecords int   // located through the offsets file, not read
	ScannedRecords int   // read and verified
	ScannedBytes   int64 // bytes of segment read by the scan
}

// TornTail describes a torn WAL tail that Open cut off: the bytes of an
// append that was never acknowledged.
type TornTail struct {
	Segment string // segment file name
	Offset  int64  // the segment was cut to this length
	Dropped int64  // bytes removed
	Copy    string // path of the copy of the damaged segment, kept for audit
	Reason  string // what did not hold at Offset
}

// ProjectionReport says what Open found of the projection (the event files,
// index files and checkpoint) and what it repaired.
type ProjectionReport struct {
	Checkpoint        uint64   // position of the checkpoint as read (0: none)
	CheckpointProblem string   // why the checkpoint was not used, if it was not
	IndexRebuilt      string   // why the index files are rebuilt from the WAL, if they are
	IndexFromSnapshot bool     // the index came from the snapshot of a clean Close
	IndexTrimmedBytes int64    // bytes cut from index files beyond the checkpoint
	IndexDamaged      []string // index files removed as unreadable
	EventsListed      bool     // events/ was listed (it changed since the checkpoint)
	StrayEventFiles   int      // event files beyond the WAL's head, removed
	MissingEventFiles int      // event files at or below the checkpoint, rewritten
	Replayed          uint64   // events projected again from the WAL
}

// Projection returns the files the store materializes.
func (s *Store) Projection() Projection { return Projection(s.choice) }

// OpenReport returns what Open found and repaired.
func (s *Store) OpenReport() OpenReport { return s.openReport }

// Stats describe a running store.
type Stats struct {
	Head         uint64 // last acknowledged position
	Projected    uint64 // last position whose event and index files are written
	Checkpointed uint64 // last position the checkpoint vouches for
	// Lag is Head minus the projector's frontier: the positions whose files
	// it has yet to write. Files Open found missing below the checkpoint,
	// rewritten in the background, hold Projected back but are not lag.
	Lag      uint64
	MaxLag   uint64        // Options.MaxProjectionLag in force
	MaxDelay time.Duration // Options.MaxProjectionDelay in force (NoProjectionDelayBound: none)
	// ProjectionRate is how many events a second the projector writes the
	// files of, measured over its recent work (an idle projector keeps the
	// rate it last had); 0 until it has projected something since Open.
	ProjectionRate float64
	// LagBound is the bound on Lag appends wait for now, in events:
	// MaxLag, or fewer when ProjectionRate × MaxDelay is less.
	LagBound uint64
	// Appends that waited for the projection lag to drop (LagBound), and
	// the time they waited in all.
	LagWaits     uint64
	LagWaitTime  time.Duration
	ProjectorErr error // the projector's last error, nil when it is healthy

	// Group commit since Open: WAL syncs (each one fsync, covering every
	// group of appends written while the one before ran), the appends they
	// acknowledged, and the mean time of one sync.
	Commits, CommittedAppends uint64
	MeanCommit                time.Duration
}

// Stats returns the store's positions and the projector's lag.
func (s *Store) Stats() Stats {
	head, projected := s.head.Load(), s.proj.Projected()
	st := Stats{
		Head:           head,
		Projected:      projected,
		Checkpointed:   s.proj.Checkpointed(),
		Lag:            head - min(head, s.proj.Frontier()),
		MaxLag:         s.opts.MaxProjectionLag,
		MaxDelay:       s.opts.MaxProjectionDelay,
		LagBound:       s.lagBound(),
		ProjectionRate: s.proj.Rate(),
		LagWaits:       s.lagWaits.Load(),
		LagWaitTime:    time.Duration(s.lagWaitNanos.Load()),
		ProjectorErr:   s.proj.Err(),
	}
	if st.Commits = s.commits.Load(); st.Commits > 0 {
		st.CommittedAppends = s.committed.Load()
		st.MeanCommit = time.Duration(s.commitNanos.Load() / int64(st.Commits))
	}
	return st
}

// WaitProjected blocks until the event files and index entries of every
// position at or below pos are written (not yet fsync'd: see the
// checkpoint), or ctx ends.
func (s *Store) WaitProjected(ctx context.Context, pos uint64) error {
	if s.closed() {
		return ErrClosed
	}
	err := s.proj.Wait(ctx, pos)
	if errors.Is(err, projector.ErrClosed) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("store: wait for projection of %d: %w", pos, err)
	}
	return nil
}
