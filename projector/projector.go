package projector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
)

const (
	// batchSize bounds the events projected between two looks at the stop
	// signal and two advances of Projected.
	batchSize = 1024
	// stopCheckEvery is how many event files the projector writes between
	// two looks at the stop signal: what Close waits for, at most.
	stopCheckEvery = 64
	// checkpointEvery is how often, at most, a busy projector syncs and
	// writes its checkpoint.
	checkpointEvery = time.Second
	// projectorNice is the nice value of the projector's thread.
	projectorNice = 10
	// openIndexFiles bounds the index files kept open for appending.
	openIndexFiles = 1024
)

// ErrClosed: the projector was stopped.
var ErrClosed = errors.New("projector: stopped")

// Projector tails a WAL and materializes it in a store directory.
type Projector struct {
	dir string
	log *wal.Log
	lg  *slog.Logger
	fs  vfs.FS // every change to the projection goes through it
	// choice: the files to materialize; the in-memory index is whole
	// either way.
	choice Choice

	projected atomic.Uint64 // every event at or below has its files, but for holes
	// holes is the lowest position whose event file is to be rewritten
	// (missing) or not yet looked for (eventsUnchecked: 1); 0: none.
	// Projected reports the position below it.
	holes        atomic.Uint64
	checkpointed atomic.Uint64
	tagEntries   int      // tag index entries at or below projected
	missing      []uint64 // event files at or below the start to rewrite
	eventsFrom   uint64   // event files below this exist (but for missing)
	// eventsUnchecked: Open trusted events/ by its modification time (see
	// Checkpoint.EventsMTime) without listing it. The goroutine lists it
	// before anything else, and before any checkpoint, so that no
	// checkpoint vouches for event files nobody looked for.
	eventsUnchecked bool
	// indexUnchecked: Open took the index from the snapshot of a clean
	// Close without looking at the index files (a stat per type and tag
	// would make Open slow). The goroutine checks them, and rewrites those
	// that do not match, before its first index append and its first
	// checkpoint (checkIndexLate).
	indexUnchecked bool
	// dirty: the projection changed in a way the checkpoint does not show
	// (a repair at Open); the next checkpoint is written even without new
	// positions.
	dirty bool

	idx     *indexer.Index // the store's in-memory index, for the snapshot at Stop
	files   *fileCache
	buf     []byte
	pending map[fileKey][]uint64

	// rate measures how fast it writes (owned by the goroutine; its
	// result is published in rateBits); clock is what it measures with.
	rate     rateMeter
	rateBits atomic.Uint64 // math.Float64bits of events per second, 0: not yet measured
	clock    atomic.Pointer[func() time.Time]

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	advanced chan struct{} // closed and replaced when projected advances
	lastErr  error
}

// rateWindow is how much of its own work time the projector's rate
// remembers: the measure follows a change of pace within about this long.
const rateWindow = 10 * time.Second

// rateMeter measures a rate over work time, not wall time, so that an idle
// projector keeps the rate it had when it last worked: sums of events and
// of busy seconds, each decayed by exp(-busy/rateWindow) as work goes on.
type rateMeter struct {
	events, busy float64
}

// observe adds n events written in d of work.
func (m *rateMeter) observe(n uint64, d time.Duration) {
	if d < 0 {
		d = 0
	}
	w := math.Exp(-d.Seconds() / rateWindow.Seconds())
	m.events = m.events*w + float64(n)
	m.busy = m.busy*w + d.Seconds()
}

// perSecond returns the events per second of work, 0 when unknown.
func (m *rateMeter) perSecond() float64 {
	if m.busy <= 0 || m.events <= 0 {
		return 0
	}
	return m.events / m.busy
}

// Report says what Open found and repaired.
type Report struct {
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

// Open prepares the projection of the store in dir for the WAL log, whose
// records up to cp.Position were not scanned (wal.Options.TrustPosition).
// cpErr is the error ReadCheckpoint gave, if any; choice, the files to
// materialize (the store's recorded choice: see ChangeChoice). Every change
// to the projection goes through fs (nil: vfs.OS). It returns the projector
// (not yet running) and the in-memory index of every event in the WAL.
func Open(dir string, log *wal.Log, cp storedir.Checkpoint, cpErr error, choice Choice, lg *slog.Logger, fs vfs.FS) (*Projector, *indexer.Index, Report, error) {
	var rep Report
	rep.Checkpoint = cp.Position
	if fs == nil {
		fs = vfs.OS
	}
	if err := RemoveUnchosen(fs, dir, choice); err != nil {
		return nil, nil, rep, err
	}
	// tmp/ and index/ (the snapshot's) whatever the choice.
	for _, d := range append([]choiceDir{{chosen: true, path: storedir.TmpDir}, {chosen: true, path: storedir.IndexDir}}, choice.dirs()...) {
		if !d.chosen {
			continue
		}
		if err := fs.MkdirAll(filepath.Join(dir, d.path), 0o750); err != nil {
			return nil, nil, rep, fmt.Errorf("projector: %w", err)
		}
	}
	if err := clearDir(fs, filepath.Join(dir, storedir.TmpDir)); err != nil {
		return nil, nil, rep, err
	}
	head := log.LastPosition()
	trusted := cpErr == nil && cp.Position <= head
	switch {
	case cpErr != nil:
		rep.CheckpointProblem = cpErr.Error()
	case cp.Position > head:
		rep.CheckpointProblem = fmt.Sprintf("checkpoint at %d is beyond the WAL's head %d", cp.Position, head)
	}
	start := uint64(0) // the projection is trusted up to here
	if trusted {
		start = cp.Position
	}
	p := &Projector{
		dir:        dir,
		log:        log,
		lg:         lg,
		fs:         fs,
		choice:     choice,
		files:      newFileCache(fs, openIndexFiles),
		pending:    map[fileKey][]uint64{},
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		advanced:   make(chan struct{}),
		eventsFrom: start + 1,
	}

	// The index: from the snapshot a clean Close left, if it matches the
	// checkpoint and the index files; else from the index files, trusted up
	// to start when they add up to the checkpoint; else rebuilt from the WAL.
	idx, tagEntries := p.loadSnapshot(start, trusted, cp)
	rep.IndexFromSnapshot = idx != nil
	if idx == nil && !choice.Index() && head > 0 {
		// The index files hold part of the index, or none of it.
		rep.IndexRebuilt = fmt.Sprintf("no snapshot, and the index files (projection %q) do not hold the whole index", choice)
	}
	if idx == nil && rep.IndexRebuilt == "" {
		var st indexer.LoadStats
		var err error
		idx, st, err = indexer.Load(fs, filepath.Join(dir, storedir.IndexDir), start)
		rep.IndexTrimmedBytes, rep.IndexDamaged = st.TrimmedBytes, st.DamagedFiles
		tagEntries = st.TagEntries
		switch {
		case err != nil:
			rep.IndexRebuilt = err.Error()
		case trusted && st.TagEntries != cp.TagEntries:
			rep.IndexRebuilt = fmt.Sprintf("tag index files hold %d positions, the checkpoint %d", st.TagEntries, cp.TagEntries)
		}
	}
	indexFrom := start + 1
	if rep.IndexRebuilt == "" && !rep.IndexFromSnapshot && cp.IDs {
		// The index files hold no event IDs: read those up to start
		// from the WAL (the rest are replayed below).
		if err := readIDs(log, idx, start); err != nil {
			return nil, nil, rep, err
		}
	}
	if rep.IndexRebuilt != "" {
		for _, d := range choice.dirs() {
			if !d.chosen || !d.index {
				continue
			}
			if err := clearDir(fs, filepath.Join(dir, d.path)); err != nil {
				return nil, nil, rep, err
			}
		}
		idx, indexFrom = indexer.New(), 1
	} else {
		p.tagEntries = tagEntries
	}

	// Event files: list events/ now unless its modification time is the
	// checkpoint's; then the goroutine lists it in the background (a
	// million names would make Open slow), before its first checkpoint.
	switch {
	case !choice.EventFiles:
	case !trusted || storedir.EventsMTime(dir) != cp.EventsMTime:
		rep.EventsListed, p.dirty = true, true
		missing, strays, err := p.checkEventFiles(head, start)
		if err != nil {
			return nil, nil, rep, err
		}
		p.missing, rep.MissingEventFiles, rep.StrayEventFiles = missing, len(missing), strays
		p.setHoles()
	default:
		p.eventsUnchecked = true
		p.holes.Store(1)
	}
	if p.eventsUnchecked || p.indexUnchecked {
		p.Notify() // the goroutine's first round starts at once
	}

	// Everything after the trusted part goes into the in-memory index now
	// and is projected again by the goroutine.
	rd := log.NewReader()
	for pos := indexFrom; pos <= head; {
		rec, err := rd.Record(pos)
		if err != nil {
			return nil, nil, rep, fmt.Errorf("projector: replay: %w", err)
		}
		for ; pos <= rec.LastPosition(); pos++ {
			if err := idx.Add(pos, rec.Events[pos-rec.FirstPosition]); err != nil {
				return nil, nil, rep, fmt.Errorf("projector: replay: %w", err)
			}
		}
	}
	p.idx = idx
	p.projected.Store(indexFrom - 1)
	p.checkpointed.Store(start)
	rep.Replayed = head - (indexFrom - 1)
	return p, idx, rep, nil
}

// readIDs adds to idx the IDs of the events at positions 1..upTo, read from
// log.
func readIDs(log *wal.Log, idx *indexer.Index, upTo uint64) error {
	rd := log.NewReader()
	for pos := uint64(1); pos <= upTo; {
		rec, err := rd.Record(pos)
		if err != nil {
			return fmt.Errorf("projector: read event IDs: %w", err)
		}
		for i, e := range rec.Events {
			if p := rec.FirstPosition + uint64(i); e.ID != "" && p <= upTo {
				idx.AddID(e.ID, p)
			}
		}
		pos = rec.LastPosition() + 1
	}
	return nil
}

// loadSnapshot returns the index in the snapshot when it covers exactly
// start, the checkpoint, and agrees with its tag entry count; nil otherwise.
// The index files are not looked at here: the goroutine checks them against
// the snapshot before it appends to them or writes a checkpoint
// (indexUnchecked). The snapshot is removed either way: once the store runs,
// it goes stale.
func (p *Projector) loadSnapshot(start uint64, trusted bool, cp storedir.Checkpoint) (*indexer.Index, int) {
	path := filepath.Join(p.dir, storedir.IndexDir, storedir.SnapshotFile)
	defer p.fs.Remove(path)
	if !trusted || start == 0 {
		return nil, 0
	}
	idx, upTo, err := indexer.ReadSnapshot(path)
	if err != nil || upTo != start {
		return nil, 0
	}
	tagEntries := idx.TagEntries()
	if !p.choice.TagIndex {
		tagEntries = 0 // the checkpoint counts the entries of tag index files
	}
	if tagEntries != cp.TagEntries {
		return nil, 0
	}
	p.indexUnchecked = p.choice.TypeIndex || p.choice.TagIndex
	return idx, tagEntries
}

// checkIndexLate checks the index files against the in-memory index, when
// Open took it from the snapshot without looking at them: a file deleted,
// truncated or extended after the clean Close shows in its size. Nothing was
// appended to the files since Open, so each must hold exactly the positions
// at or below the checkpoint. A file that does not is rewritten from the
// in-memory index, and made durable before its name is back in place, since
// the checkpoint already vouches for it; an index file no type or tag owns
// is removed.
func (p *Projector) checkIndexLate() error {
	upTo := p.checkpointed.Load()
	m, err := indexer.CheckFiles(filepath.Join(p.dir, storedir.IndexDir), p.idx, upTo, p.choice.TypeIndex, p.choice.TagIndex)
	if err != nil {
		return fmt.Errorf("projector: check index files: %w", err)
	}
	if !m.Empty() {
		p.lg.Warn("possum: index files had changed since the clean Close; rewriting them from the WAL's index",
			"dir", p.dir, "types", len(m.Types), "tags", len(m.Tags), "strays", len(m.Strays))
		if err := p.rewriteIndex(m, upTo); err != nil {
			return err
		}
		p.dirty = true
	}
	p.indexUnchecked = false
	return nil
}

// rewriteIndex writes the index files m names again, with their positions
// at or below upTo, and removes m's strays. As in rewrite, the files are
// written to tmp/, made durable by one sync of the file system, and renamed
// into place.
func (p *Projector) rewriteIndex(m indexer.Mismatch, upTo uint64) error {
	type file struct{ tmp, path string }
	var files []file
	for _, kind := range []struct {
		dir   string
		names []string
	}{{storedir.TypesDir, m.Types}, {storedir.TagsDir, m.Tags}} {
		if len(kind.names) == 0 {
			continue
		}
		lists := p.idx.Types()
		if kind.dir == storedir.TagsDir {
			lists = p.idx.Tags()
		}
		for _, name := range kind.names {
			ps := lists[name]
			ps = ps[:sort.Search(len(ps), func(i int) bool { return ps[i] > upTo })]
			f := file{
				tmp:  filepath.Join(p.dir, storedir.TmpDir, "index-"+kind.dir+"-"+storedir.IndexFileName(name)),
				path: p.indexPath(fileKey{kind.dir, name}),
			}
			if err := vfs.WriteFile(p.fs, f.tmp, indexer.EncodeFile(name, ps), 0o640); err != nil {
				return fmt.Errorf("projector: rewrite index of %q: %w", name, err)
			}
			files = append(files, f)
		}
	}
	if len(files) > 0 {
		if err := p.fs.SyncFS(p.dir); err != nil {
			return fmt.Errorf("projector: syncfs %s: %w", p.dir, err)
		}
	}
	for _, f := range files {
		if err := p.fs.Rename(f.tmp, f.path); err != nil {
			return fmt.Errorf("projector: rewrite index: %w", err)
		}
	}
	for _, path := range m.Strays {
		if err := p.fs.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("projector: remove stray index file: %w", err)
		}
	}
	return nil
}

// checkEventFiles lists events/ (names only): it removes the files beyond
// head and returns the positions at or below start with no file, and how
// many files it removed.
func (p *Projector) checkEventFiles(head, start uint64) ([]uint64, int, error) {
	dir := filepath.Join(p.dir, storedir.EventsDir)
	d, err := os.Open(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("projector: %w", err)
	}
	defer d.Close()
	present := make([]bool, start+1)
	var strays []string
	for {
		// A chunk of names at a time: a million names in one slice cost
		// more in its growth than in the listing.
		names, err := d.Readdirnames(4096)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("projector: list %s: %w", dir, err)
		}
		for _, name := range names {
			pos, ok := storedir.ParseEventFileName(name)
			if !ok {
				continue
			}
			if pos > head {
				strays = append(strays, name) // removed once listed
				continue
			}
			if pos <= start {
				present[pos] = true
			}
		}
	}
	for i, name := range strays {
		if err := p.fs.Remove(filepath.Join(dir, name)); err != nil {
			return nil, i, fmt.Errorf("projector: remove stray event file: %w", err)
		}
	}
	var missing []uint64
	for pos := uint64(1); pos <= start; pos++ {
		if !present[pos] {
			missing = append(missing, pos)
		}
	}
	return missing, len(strays), nil
}

// checkEventsLate is checkEventFiles for the goroutine, when Open trusted
// events/ by its modification time: a deletion within the same tick as the
// last write, or a tool that restores directory times (cp -a, rsync -a,
// tar), leaves the time as the checkpoint saw it. Files the projector wrote
// since Open are at or below the WAL's head, read before the listing.
func (p *Projector) checkEventsLate() error {
	missing, strays, err := p.checkEventFiles(p.log.LastPosition(), p.checkpointed.Load())
	if err != nil {
		return err
	}
	if len(missing) > 0 || strays > 0 {
		p.lg.Warn("possum: events/ had changed since the checkpoint though its modification time had not; repairing",
			"dir", p.dir, "missing_event_files", len(missing), "stray_event_files", strays)
		p.missing, p.dirty = append(p.missing, missing...), true
	}
	p.eventsUnchecked = false
	p.setHoles()
	return nil
}

// setHoles publishes the lowest event file still to be rewritten.
func (p *Projector) setHoles() {
	h := uint64(0)
	if len(p.missing) > 0 {
		h = p.missing[0]
	}
	p.holes.Store(h)
	p.advance()
}

// advance wakes the callers of Wait.
func (p *Projector) advance() {
	p.mu.Lock()
	close(p.advanced)
	p.advanced = make(chan struct{})
	p.mu.Unlock()
}

func clearDir(fs vfs.FS, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	for _, e := range ents {
		if err := fs.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("projector: %w", err)
		}
	}
	return nil
}

// Start runs the projector goroutine.
func (p *Projector) Start() { go p.run() }

// Rate returns how many events a second the projector writes the files of,
// measured over its recent work (busy time: an idle projector keeps the
// rate it last had); 0 until it has projected something since Open.
func (p *Projector) Rate() float64 { return math.Float64frombits(p.rateBits.Load()) }

// SetClock makes the projector measure its rate with now instead of
// time.Now: for tests that give its work a known duration.
func (p *Projector) SetClock(now func() time.Time) { p.clock.Store(&now) }

func (p *Projector) now() time.Time {
	if c := p.clock.Load(); c != nil {
		return (*c)()
	}
	return time.Now()
}

// measure adds n events written since start to the rate.
func (p *Projector) measure(n uint64, start time.Time) {
	p.rate.observe(n, p.now().Sub(start))
	p.rateBits.Store(math.Float64bits(p.rate.perSecond()))
}

// Notify tells the projector the WAL has grown. It never blocks.
func (p *Projector) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Projected returns the last position such that the files of every position
// at or below it are written.
func (p *Projector) Projected() uint64 {
	pr := p.projected.Load()
	if h := p.holes.Load(); h != 0 {
		return min(pr, h-1)
	}
	return pr
}

// Checkpointed returns the position of the last checkpoint written.
func (p *Projector) Checkpointed() uint64 { return p.checkpointed.Load() }

// Err returns the last projection error, nil once a later attempt succeeded.
func (p *Projector) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// Frontier returns the last position the projector has written the files
// of, going forward: Projected but for the files below the checkpoint it
// is still to look for or rewrite. Head minus Frontier is the lag.
func (p *Projector) Frontier() uint64 { return p.projected.Load() }

// Wait blocks until every event at or below pos is projected, ctx ends or the
// projector stops.
func (p *Projector) Wait(ctx context.Context, pos uint64) error {
	return p.wait(ctx, pos, p.Projected)
}

// WaitFrontier blocks until the frontier reaches pos, ctx ends or the
// projector stops.
func (p *Projector) WaitFrontier(ctx context.Context, pos uint64) error {
	return p.wait(ctx, pos, p.Frontier)
}

func (p *Projector) wait(ctx context.Context, pos uint64, reached func() uint64) error {
	for {
		p.mu.Lock()
		ch := p.advanced
		p.mu.Unlock()
		if reached() >= pos {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			if reached() >= pos {
				return nil
			}
			return ErrClosed
		}
	}
}

// Stop stops the projector without waiting for its backlog: it stops within
// stopCheckEvery event files, leaves a snapshot of the
// index as far as it projected and a checkpoint there, and returns. The next
// Open projects the rest in the background, from the WAL.
func (p *Projector) Stop() error {
	close(p.stop)
	<-p.done
	return p.Err()
}

func (p *Projector) run() {
	defer close(p.done)
	// Projection is background work: on its own thread at a lower CPU
	// priority, its file system calls (inode allocation costs a CPU here)
	// yield to the writer's. Best effort: an error leaves the priority as is.
	runtime.LockOSThread()
	_ = platform.LowerThreadPriority(projectorNice)
	defer p.files.closeAll()
	ticker := time.NewTicker(checkpointEvery)
	defer ticker.Stop()
	lastCheckpoint := time.Now()
	for {
		stopping := false
		select {
		case <-p.wake:
		case <-ticker.C:
		case <-p.stop:
			stopping = true
		}
		var err error
		if p.eventsUnchecked && !stopping {
			// A stop first leaves the listing to the next Open (and
			// writes no checkpoint: see below).
			err = p.checkEventsLate()
		}
		if err == nil && p.indexUnchecked {
			// Even when stopping (one stat per type and tag): without
			// it no checkpoint could follow, and the repairs of this
			// Open would be done again by the next. A select that
			// finds the first round's wake and the stop both ready
			// picks either.
			err = p.checkIndexLate()
		}
		if err == nil && !stopping {
			err = p.catchUp()
		}
		if err == nil && stopping {
			// A clean stop leaves the whole index in one file, so the next
			// Open reads it instead of every index file.
			err = indexer.WriteSnapshot(p.fs, filepath.Join(p.dir, storedir.IndexDir, storedir.SnapshotFile),
				filepath.Join(p.dir, storedir.TmpDir, storedir.SnapshotFile), p.idx, p.projected.Load())
			p.dirty = true // the checkpoint below makes the snapshot durable
		}
		// A checkpoint vouches for every file at or below it: none while
		// event files are still to be listed or rewritten, or index files
		// to be checked (a stop can come first).
		if err == nil && !p.eventsUnchecked && !p.indexUnchecked && len(p.missing) == 0 &&
			(p.dirty || p.projected.Load() > p.checkpointed.Load()) &&
			(stopping || time.Since(lastCheckpoint) >= checkpointEvery) {
			start := p.now()
			err = p.checkpoint()
			lastCheckpoint = time.Now()
			// Its sync is part of what writing the files costs.
			p.measure(0, start)
		}
		p.setErr(err)
		if stopping {
			return
		}
	}
}

// Stopping returns a channel closed when Stop is called.
func (p *Projector) Stopping() <-chan struct{} { return p.stop }

func (p *Projector) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

func (p *Projector) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && (p.lastErr == nil || p.lastErr.Error() != err.Error()) {
		p.lg.Error("possum: projection failed; the WAL holds every event, retrying", "dir", p.dir, "err", err)
	}
	p.lastErr = err
}

// catchUp projects batches until the WAL's head is reached, or until it is
// asked to stop: then it returns within stopCheckEvery event files.
func (p *Projector) catchUp() error {
	for len(p.missing) > 0 {
		if p.stopped() {
			return nil
		}
		n := min(len(p.missing), batchSize)
		if err := p.rewrite(p.missing[:n]); err != nil {
			return err
		}
		p.missing = p.missing[n:]
		p.setHoles()
	}
	for {
		from, head := p.projected.Load()+1, p.log.LastPosition()
		if from > head {
			return nil
		}
		if p.stopped() {
			return nil
		}
		start := p.now()
		to, err := p.project(from, min(head, from+batchSize-1))
		if err != nil {
			return err
		}
		p.measure(to-from+1, start)
		p.projected.Store(to)
		p.advance()
	}
}

// project writes the event files and index entries of positions from..to,
// or, when asked to stop meanwhile, of from..n for some n < to; it returns
// the last position projected. A failed attempt leaves no index entry beyond
// from-1, so the retry appends each position once.
func (p *Projector) project(from, to uint64) (uint64, error) {
	clear(p.pending)
	rd := p.log.NewReader()
	for pos := from; pos <= to; pos++ {
		if (pos-from)%stopCheckEvery == stopCheckEvery-1 && p.stopped() {
			to = pos - 1
			break
		}
		e, err := rd.Event(pos)
		if err != nil {
			return 0, err
		}
		if p.choice.EventFiles && pos >= p.eventsFrom {
			if err := p.writeEvent(e); err != nil {
				return 0, err
			}
		}
		if p.choice.TypeIndex {
			p.pending[fileKey{storedir.TypesDir, e.Type}] = append(p.pending[fileKey{storedir.TypesDir, e.Type}], pos)
		}
		if p.choice.TagIndex {
			for _, t := range e.Tags {
				p.pending[fileKey{storedir.TagsDir, t}] = append(p.pending[fileKey{storedir.TagsDir, t}], pos)
			}
		}
	}
	tagEntries := 0
	for k, ps := range p.pending {
		if err := p.appendIndex(k, ps); err != nil {
			return 0, errors.Join(err, p.rollBackIndex(from-1))
		}
		if k.kind == storedir.TagsDir {
			tagEntries += len(ps)
		}
	}
	p.tagEntries += tagEntries
	return to, nil
}

// rollBackIndex trims the index files of the failed batch to upTo.
func (p *Projector) rollBackIndex(upTo uint64) error {
	var errs []error
	for k := range p.pending {
		p.files.drop(k)
		errs = append(errs, indexer.TrimFile(p.fs, p.indexPath(k), upTo))
	}
	return errors.Join(errs...)
}

func (p *Projector) indexPath(k fileKey) string {
	return filepath.Join(p.dir, storedir.IndexDir, k.kind, storedir.IndexFileName(k.name))
}

// rewrite writes the event files of the given positions again. A checkpoint
// already vouches for them, so each must be durable before its name is back
// in events/: a power cut must not leave a name there with no content (the
// next Open lists names only). They are written to tmp/, made durable by one
// sync of the file system, and renamed into place.
func (p *Projector) rewrite(positions []uint64) error {
	rd := p.log.NewReader()
	tmps := make([]string, len(positions))
	for i, pos := range positions {
		e, err := rd.Event(pos)
		if err != nil {
			return err
		}
		p.buf = storedir.AppendEventFile(p.buf[:0], e)
		tmps[i] = filepath.Join(p.dir, storedir.TmpDir, "rewrite-"+storedir.EventFileName(pos))
		if err := vfs.WriteFile(p.fs, tmps[i], p.buf, 0o640); err != nil {
			return fmt.Errorf("projector: rewrite event %d: %w", pos, err)
		}
	}
	if err := p.fs.SyncFS(p.dir); err != nil {
		return fmt.Errorf("projector: syncfs %s: %w", p.dir, err)
	}
	for i, pos := range positions {
		if err := p.fs.Rename(tmps[i], storedir.EventPath(p.dir, pos)); err != nil {
			return fmt.Errorf("projector: rewrite event %d: %w", pos, err)
		}
	}
	return nil
}

// writeEvent writes e's event file.
func (p *Projector) writeEvent(e dcb.SequencedEvent) error {
	var err error
	p.buf, err = WriteEventFile(p.fs, p.dir, e, p.buf)
	return err
}

// WriteEventFile writes the event file of e in the store directory dir: in
// tmp/, then renamed into events/, so that a watcher never sees it partial.
// It is not fsync'd (see the checkpoint). buf is scratch space, returned for
// reuse. One writer at a time per directory. Every change goes through fs.
func WriteEventFile(fs vfs.FS, dir string, e dcb.SequencedEvent, buf []byte) ([]byte, error) {
	buf = storedir.AppendEventFile(buf[:0], e)
	tmp := filepath.Join(dir, storedir.TmpDir, "event")
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return buf, fmt.Errorf("projector: %w", err)
	}
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return buf, fmt.Errorf("projector: write event %d: %w", e.Position, err)
	}
	if err := fs.Rename(tmp, storedir.EventPath(dir, e.Position)); err != nil {
		return buf, fmt.Errorf("projector: %w", err)
	}
	return buf, nil
}

func (p *Projector) appendIndex(k fileKey, positions []uint64) error {
	f, empty, err := p.files.get(p.dir, k)
	if err != nil {
		return err
	}
	if p.buf, err = indexer.AppendEntries(f, k.name, empty, positions, p.buf); err != nil {
		p.files.drop(k)
		return fmt.Errorf("projector: append to index of %q: %w", k.name, err)
	}
	return nil
}

func (p *Projector) checkpoint() error {
	pos := p.projected.Load()
	if err := WriteCheckpoint(p.fs, p.dir, storedir.Checkpoint{Position: pos, TagEntries: p.tagEntries, IDs: p.idx.IDs() > 0}); err != nil {
		return err
	}
	p.checkpointed.Store(pos)
	p.dirty = false
	return nil
}
