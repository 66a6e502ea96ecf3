package recovery

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
)

// ErrDataLoss: a repair would lose acknowledged events and was not allowed
// to.
var ErrDataLoss = errors.New("recovery: repair would lose events")

// Problem kinds.
const (
	WALTornTail      = "wal-torn-tail"      // repairable: cut, a copy kept
	WALCorrupt       = "wal-corrupt"        // mid-log damage or a missing segment: data loss
	WALLost          = "wal-lost"           // the WAL ends before positions that were acknowledged: data loss
	WALMarker        = "wal-marker"         // leftover tidwall truncation marker
	EventMissing     = "event-missing"      // an event file is missing
	EventDiffers     = "event-differs"      // an event file does not match the WAL
	EventStray       = "event-stray"        // an event file beyond the WAL's head
	IndexMissing     = "index-missing"      // no index file for a type or tag
	IndexDiffers     = "index-differs"      // an index file lists the wrong positions
	IndexStray       = "index-stray"        // an index file for no type or tag in the WAL
	CheckpointBad    = "checkpoint-invalid" // missing, unreadable, or inconsistent
	maxListedPerKind = 20
)

// Problem is one thing wrong with a store.
type Problem struct {
	Kind   string `json:"kind"`
	Path   string `json:"path,omitempty"`
	Detail string `json:"detail"`
	// DataLoss: repairing it loses acknowledged events.
	DataLoss bool `json:"dataLoss,omitempty"`
}

// Report is what Verify found, or what Repair found and did.
type Report struct {
	Dir    string           `json:"dir"`
	Head   uint64           `json:"head"` // last position of the WAL's valid part (beside a writer: checked)
	WAL    wal.VerifyReport `json:"wal"`
	Counts map[string]int   `json:"counts"` // problems by kind
	// Problems lists the problems found, at most 20 of each kind.
	Problems []Problem `json:"problems"`
	// Repairs lists the actions Repair took (or, dry run, would take).
	Repairs []string `json:"repairs,omitempty"`
	// Lost is set when a repair cut the WAL in the middle: the positions
	// that are gone.
	Lost *PositionRange `json:"lost,omitempty"`
	// Kept lists the damaged files a repair moved or copied aside.
	Kept []string `json:"kept,omitempty"`
	// Checkpoint is the position the projection's checkpoint vouches for;
	// Pending counts the positions after it, up to Head, that the projector
	// had not yet checkpointed (a Close never waits for the projection
	// backlog, and a crash leaves one). They are not problems: the next
	// Open projects them in the background, and Repair projects them.
	Checkpoint uint64 `json:"checkpoint"`
	Pending    uint64 `json:"pending"`
	// Lock says which lock Verify (or a dry run of Repair) held while it
	// checked: "shared", or "none: " and why: a store it cannot write (a
	// read-only mount), or a writer holding it (BesideWriter). Repair
	// holds the exclusive lock and leaves it empty.
	Lock string `json:"lock,omitempty"`
	// BesideWriter: a writer had the store open (it held the exclusive
	// lock) while it was checked, and may have gone on appending. The check
	// took no lock and changed nothing; it covered what the writer had
	// acknowledged when the check began, the positions up to Head (those
	// the WAL's offsets file or the checkpoint vouched for), and left alone
	// what the writer wrote after them: later WAL records, and event and
	// index file entries of later positions. Projected files the writer
	// has yet to write are pending, not problems, as after a Close.
	BesideWriter bool          `json:"besideWriter,omitempty"`
	Elapsed      time.Duration `json:"elapsedNs"`
}

// PositionRange is an inclusive range of positions; To 0 means unknown.
type PositionRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

func newReport(dir string) *Report {
	return &Report{Dir: dir, Counts: map[string]int{}, Problems: []Problem{}}
}

// Consistent reports whether nothing is wrong.
func (r *Report) Consistent() bool { return len(r.Counts) == 0 }

func (r *Report) add(p Problem) {
	r.Counts[p.Kind]++
	if r.Counts[p.Kind] <= maxListedPerKind {
		r.Problems = append(r.Problems, p)
	}
}

// Options shape Verify and Repair. A nil *Options means the defaults.
type Options struct {
	// Progress, if set, is called as events are checked (done of total).
	Progress func(done, total uint64)
	// DryRun: Repair reports what it would do and changes nothing.
	DryRun bool
	// AllowDataLoss: Repair may cut the WAL at mid-log damage, losing every
	// event from there on.
	AllowDataLoss bool
}

func checkDir(dir string) error {
	st, err := os.Stat(filepath.Join(dir, storedir.WALDir))
	if err != nil || !st.IsDir() {
		return fmt.Errorf("recovery: %s is not a possum store (no wal/ directory)", dir)
	}
	return nil
}

// LockBesideWriter is Report.Lock when a writer held the store: the check
// took no lock.
const LockBesideWriter = "none: a writer has the store open (checked beside it what it had acknowledged)"

// Verify checks the store in dir without changing it. It holds the shared
// lock meanwhile, so that no writer opens the store halfway; when a writer
// has the store open, it checks beside it, taking no lock, what that writer
// had acknowledged (see Report.BesideWriter).
func Verify(dir string, opts *Options) (*Report, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	lock, how, beside, err := lockToCheck(dir)
	if err != nil {
		return nil, err
	}
	if lock != nil {
		defer storedir.Unlock(lock)
	}
	start := time.Now()
	rep := newReport(dir)
	rep.Lock, rep.BesideWriter = how, beside
	ack := readAcknowledged(dir)
	c, err := newChecker(dir, ack, beside, false, false, o.Progress)
	if err != nil {
		return nil, err
	}
	wrep, err := verifyWAL(filepath.Join(dir, storedir.WALDir), ack.upTo, beside, c.event)
	if err != nil {
		return nil, fmt.Errorf("recovery: verify %s: %w", dir, err)
	}
	rep.WAL, rep.Head = wrep, wrep.LastPosition
	addWALProblems(rep, wrep, ack.upTo)
	if err := c.finish(rep); err != nil {
		return nil, err
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// lockToCheck takes the shared lock for a check that changes nothing
// (lockShared). When a writer holds the store, it takes none and says so:
// beside, with Report.Lock LockBesideWriter.
func lockToCheck(dir string) (lock *os.File, how string, beside bool, err error) {
	lock, how, err = storedir.LockShared(dir)
	if errors.Is(err, store.ErrLocked) {
		return nil, LockBesideWriter, true, nil
	}
	return lock, how, false, err
}

// acknowledgement is what a store vouches was acknowledged: its checkpoint,
// and upTo, the last position the checkpoint or the WAL's offsets file
// vouch for (the writer appends an offsets entry once its record is
// durable, and the projector checkpoints durable positions only).
type acknowledgement struct {
	cp    storedir.Checkpoint
	cpErr error
	upTo  uint64
}

// readAcknowledged reads what the store in dir vouches was acknowledged:
// the checkpoint first, then the offsets file. Beside a writer both only
// grow, so that every position up to upTo was durable, and the checkpoint
// covers no position beyond upTo, as they were read.
func readAcknowledged(dir string) acknowledgement {
	cp, err := storedir.ReadCheckpoint(dir) // an unreadable checkpoint vouches for nothing
	return acknowledgement{cp: cp, cpErr: err, upTo: max(cp.Position, wal.Vouched(filepath.Join(dir, storedir.WALDir)))}
}

// errBeyond stops the WAL's verification beside a writer.
var errBeyond = errors.New("recovery: beyond what the writer acknowledged")

// verifyWAL is wal.Verify on the WAL in dir, fn called with each valid
// record. Beside a writer, it stops at the first record after position
// upTo and ignores damage after upTo: that is the writer's, being written
// (a record it has not yet acknowledged, read half written).
func verifyWAL(dir string, upTo uint64, beside bool, fn func(wal.Record) error) (wal.VerifyReport, error) {
	if !beside {
		return wal.Verify(dir, fn)
	}
	rep, err := wal.Verify(dir, func(r wal.Record) error {
		if r.FirstPosition > upTo {
			return errBeyond
		}
		if fn == nil {
			return nil
		}
		return fn(r)
	})
	if errors.Is(err, errBeyond) {
		err = nil
	}
	if d := rep.Damage; d != nil && d.LostFrom > upTo {
		rep.Damage = nil
	}
	return rep, err
}

// lostPositions returns the positions a repair of the WAL w loses, nil when
// none: those after mid-log damage, and those up to acked (the last position
// the store vouches was acknowledged) that the WAL's valid part lacks.
func lostPositions(w wal.VerifyReport, acked uint64) *PositionRange {
	var r *PositionRange
	if d := w.Damage; d != nil && !d.Torn {
		r = &PositionRange{From: d.LostFrom, To: d.LostTo}
	}
	if acked > w.LastPosition {
		if r == nil {
			r = &PositionRange{From: w.LastPosition + 1}
		}
		r.To = max(r.To, acked)
	}
	return r
}

// addWALProblems reports the WAL's damage; acked is the last position the
// checkpoint or the offsets file vouch for.
func addWALProblems(rep *Report, w wal.VerifyReport, acked uint64) {
	for _, m := range w.Markers {
		rep.add(Problem{Kind: WALMarker, Path: filepath.Join(rep.Dir, storedir.WALDir, m), Detail: "leftover truncation marker; the segments hold the data, it can be moved aside"})
	}
	if d := w.Damage; d != nil {
		p := Problem{Path: filepath.Join(rep.Dir, storedir.WALDir, d.Segment)}
		if d.Torn {
			p.Kind, p.Detail = WALTornTail, fmt.Sprintf("torn tail at offset %d: %s", d.Offset, d.Reason)
		} else {
			p.Kind, p.DataLoss = WALCorrupt, true
			p.Detail = fmt.Sprintf("damage at offset %d: %s; a cut there loses positions %s", d.Offset, d.Reason, lostRange(d))
		}
		rep.add(p)
	}
	// Mid-log damage already reports its loss; otherwise the WAL may still
	// end short of what was acknowledged (a truncated or deleted segment).
	if d := w.Damage; (d == nil || d.Torn) && acked > w.LastPosition {
		rep.add(Problem{Kind: WALLost, Path: filepath.Join(rep.Dir, storedir.WALDir), DataLoss: true,
			Detail: fmt.Sprintf("the WAL's valid part ends at position %d, but positions up to %d were acknowledged (the checkpoint or the WAL offsets file vouch for them): positions %d..%d are lost",
				w.LastPosition, acked, w.LastPosition+1, acked)})
	}
}

func lostRange(d *wal.Damage) string {
	return formatRange(PositionRange{From: d.LostFrom, To: d.LostTo})
}

func formatRange(r PositionRange) string {
	if r.To == 0 {
		return fmt.Sprintf("from %d (the damaged record's; none readable after it)", r.From)
	}
	return fmt.Sprintf("%d..%d", r.From, r.To)
}

// Repair verifies the store in dir and repairs it (see the package doc). It
// holds the exclusive lock, and refuses a store another process has open
// (ErrLocked). A dry run changes nothing and needs no more than Verify: the
// shared lock, or none beside a writer (Report.BesideWriter), where it says
// what a repair would do once the writer has closed the store.
func Repair(dir string, opts *Options) (*Report, error) {
	if opts == nil {
		opts = &Options{}
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	var lock *os.File
	var how string
	var beside bool
	var err error
	if opts.DryRun {
		lock, how, beside, err = lockToCheck(dir)
	} else {
		lock, err = storedir.Lock(dir, true)
	}
	if err != nil {
		return nil, err
	}
	if lock != nil {
		defer storedir.Unlock(lock)
	}
	start := time.Now()
	walDir := filepath.Join(dir, storedir.WALDir)
	rep := newReport(dir)
	rep.Lock, rep.BesideWriter = how, beside

	// The WAL first: decide before changing anything.
	ack := readAcknowledged(dir)
	wrep, err := verifyWAL(walDir, ack.upTo, beside, nil)
	if err != nil {
		return nil, fmt.Errorf("recovery: repair %s: %w", dir, err)
	}
	acked := ack.upTo
	addWALProblems(rep, wrep, acked)
	lost := lostPositions(wrep, acked)
	if lost != nil && !opts.AllowDataLoss {
		rep.WAL, rep.Head = wrep, wrep.LastPosition
		rep.Elapsed = time.Since(start)
		if d := wrep.Damage; d != nil && !d.Torn {
			return rep, fmt.Errorf("%w: WAL damage in %s at offset %d (%s); cutting there loses positions %s; nothing was changed",
				ErrDataLoss, d.Segment, d.Offset, d.Reason, formatRange(*lost))
		}
		return rep, fmt.Errorf("%w: the WAL's valid part ends at position %d, but positions up to %d were acknowledged: positions %s are lost; nothing was changed",
			ErrDataLoss, wrep.LastPosition, lost.To, formatRange(*lost))
	}
	rep.Lost = lost
	// The cut also drops the offsets file, which vouches for lost positions.
	if wrep.Damage != nil || len(wrep.Markers) > 0 || lost != nil {
		rep.Repairs = append(rep.Repairs, "cut the WAL after position "+fmt.Sprint(wrep.LastPosition)+", keeping the damaged files aside")
		if !opts.DryRun {
			kept, err := wal.Cut(walDir, wrep.Damage, wrep.Markers)
			rep.Kept = kept
			if err != nil {
				return rep, fmt.Errorf("recovery: repair %s: %w", dir, err)
			}
		}
	}

	// Then the projection, checked against the WAL's valid part and fixed.
	if !opts.DryRun {
		// Opening the WAL rebuilds its offsets file from a full scan.
		w, _, err := wal.Open(walDir, wal.Options{})
		if err != nil {
			return rep, fmt.Errorf("recovery: repair %s: %w", dir, err)
		}
		if err := w.Close(); err != nil {
			return rep, fmt.Errorf("recovery: repair %s: %w", dir, err)
		}
	}
	c, err := newChecker(dir, ack, beside, !opts.DryRun, true, opts.Progress)
	if err != nil {
		return rep, err
	}
	if !opts.DryRun {
		// The old checkpoint (the checker has read it) must not outlive a
		// power cut in the middle of the repair, vouching for event files
		// the repair was rewriting (named, their content not yet on disk):
		// with no checkpoint, the next Open rewrites every event file.
		// finish writes a new one.
		cp := filepath.Join(dir, storedir.CheckpointFile)
		if err := vfs.OS.Remove(cp); err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, fmt.Errorf("recovery: repair %s: %w", dir, err)
		}
		if err := vfs.OS.SyncDir(dir); err != nil {
			return rep, fmt.Errorf("recovery: repair %s: %w", dir, err)
		}
	}
	vrep, err := verifyWAL(walDir, ack.upTo, beside, c.event)
	if err != nil {
		return rep, fmt.Errorf("recovery: repair %s: %w", dir, err)
	}
	if !opts.DryRun && (vrep.Damage != nil || len(vrep.Markers) > 0) {
		return rep, fmt.Errorf("recovery: repair %s: WAL still damaged after the cut: %+v", dir, vrep.Damage)
	}
	rep.WAL, rep.Head = wrep, wrep.LastPosition
	if err := c.finish(rep); err != nil {
		return rep, err
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// checker compares the projection with the WAL, event by event as the WAL
// is read, then index files and checkpoint at the end; with fix, it repairs
// as it goes.
type checker struct {
	dir     string
	fix     bool
	collect bool // list the repairs (done or, without fix, to do) in the report
	// beside: a writer has the store open. The WAL is read up to what it
	// had acknowledged (head, once read); the projected files of later
	// positions, and index entries of them, are the writer's to write and
	// are not looked at. Never with fix.
	beside   bool
	progress func(done, total uint64)
	cp       storedir.Checkpoint // as it was when the check began
	cpErr    error
	idx      *indexer.Index
	head     uint64
	total    uint64
	problems []Problem
	buf      []byte
	rewrote  int
	// behind is the checkpoint's position when the checkpoint is valid:
	// event files and index entries after it may be missing without being
	// problems (the projection is behind, not damaged). ^0: no valid
	// checkpoint, every position must be projected.
	behind  uint64
	pending int // event files after behind that are missing
	// choice: the files the store materializes; the others are not
	// checked (nor written by a repair).
	choice projector.Choice
}

// newChecker returns a checker of the store in dir, whose checkpoint ack
// holds; with fix it repairs what it finds, with collect it lists the
// repairs (done or, without fix, to do); beside, it checks beside a writer.
func newChecker(dir string, ack acknowledgement, beside, fix, collect bool, progress func(done, total uint64)) (*checker, error) {
	if beside && fix {
		return nil, errors.New("recovery: a repair beside a writer") // a bug
	}
	c := &checker{dir: dir, fix: fix, collect: collect, beside: beside, progress: progress, idx: indexer.New()}
	c.cp, c.cpErr = ack.cp, ack.cpErr
	var err error
	if c.choice, err = projector.ReadChoice(dir); err != nil {
		return nil, fmt.Errorf("recovery: %w", err)
	}
	c.behind = ^uint64(0)
	if _, err := os.Stat(filepath.Join(dir, storedir.CheckpointFile)); c.cpErr == nil && (err == nil || beside) {
		// Beside a writer, no checkpoint is one not yet written: the
		// writer projects every position.
		c.behind = c.cp.Position
	}
	if progress != nil && c.cpErr == nil {
		// An estimate of the total for the progress bar: the checkpoint's
		// position; 0 (unknown) without one. The bar grows past it if needed.
		c.total = c.cp.Position
	}
	if fix {
		// Leftovers in tmp/ are never needed; the directories may be gone.
		err := errors.Join(
			os.RemoveAll(filepath.Join(dir, storedir.TmpDir)),
			os.MkdirAll(filepath.Join(dir, storedir.TmpDir), 0o750),
			projector.RemoveUnchosen(vfs.OS, dir, c.choice))
		if c.choice.EventFiles {
			err = errors.Join(err, os.MkdirAll(filepath.Join(dir, storedir.EventsDir), 0o750))
		}
		if err != nil {
			return nil, fmt.Errorf("recovery: %w", err)
		}
	}
	return c, nil
}

func (c *checker) event(r wal.Record) error {
	for i, e := range r.Events {
		pos := r.FirstPosition + uint64(i)
		if err := c.idx.Add(pos, e); err != nil {
			return err
		}
		c.head = pos
		if !c.choice.EventFiles {
			continue
		}
		se := r.Event(pos)
		c.buf = storedir.AppendEventFile(c.buf[:0], se)
		path := storedir.EventPath(c.dir, pos)
		got, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && pos > c.behind:
			c.pending++ // not yet projected
		case errors.Is(err, os.ErrNotExist):
			c.problem(Problem{Kind: EventMissing, Path: path, Detail: fmt.Sprintf("position %d has no event file", pos)})
		case err != nil:
			c.problem(Problem{Kind: EventDiffers, Path: path, Detail: err.Error()})
		case !bytes.Equal(got, c.buf):
			c.problem(Problem{Kind: EventDiffers, Path: path, Detail: fmt.Sprintf("event file of position %d does not match the WAL", pos)})
		default:
			continue
		}
		if c.fix {
			want := slices.Clone(c.buf)
			if _, err := projector.WriteEventFile(vfs.OS, c.dir, se, want); err != nil {
				return fmt.Errorf("recovery: %w", err)
			}
		}
		if pos <= c.behind || err == nil {
			c.rewrote++ // or, dry run, would rewrite
		}
		if c.progress != nil && pos%4096 == 0 {
			c.progress(pos, max(c.total, pos))
		}
	}
	if c.progress != nil {
		c.progress(c.head, max(c.total, c.head))
	}
	return nil
}

func (c *checker) problem(p Problem) { c.problems = append(c.problems, p) }

// finish checks what only the whole WAL tells: stray event files, index
// files, the checkpoint.
func (c *checker) finish(rep *Report) error {
	for _, p := range c.problems {
		rep.add(p)
	}
	if c.rewrote > 0 && c.collect {
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("rewrite %d event files", c.rewrote))
	}
	if c.pending > 0 && c.collect && !c.beside { // the writer's projector projects them
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("project %d event files after the checkpoint", c.pending))
	}
	if err := c.strayEvents(rep); err != nil {
		return err
	}
	tagEntries, err := c.indexFiles(rep)
	if err != nil {
		return err
	}
	cp, cpErr := c.cp, c.cpErr
	cpBad := false
	switch {
	case cpErr != nil:
		cpBad = true
		rep.add(Problem{Kind: CheckpointBad, Path: filepath.Join(c.dir, storedir.CheckpointFile), Detail: cpErr.Error()})
	case c.behind == ^uint64(0) && c.head != 0:
		cpBad = true
		rep.add(Problem{Kind: CheckpointBad, Path: filepath.Join(c.dir, storedir.CheckpointFile), Detail: "no checkpoint"})
	case cp.Position > c.head || cp.TagEntries != c.tagEntriesUpTo(cp.Position):
		if cp.Position != 0 || c.head != 0 {
			cpBad = true
			rep.add(Problem{Kind: CheckpointBad, Path: filepath.Join(c.dir, storedir.CheckpointFile),
				Detail: fmt.Sprintf("checkpoint says position %d with %d tag entries; the WAL has %d and %d", cp.Position, cp.TagEntries, c.head, tagEntries)})
		}
	}
	if !cpBad && cp.Position <= c.head {
		rep.Checkpoint, rep.Pending = cp.Position, c.head-cp.Position
	}
	if c.fix {
		// A snapshot of the index from before the repair is stale.
		if err := os.Remove(filepath.Join(c.dir, storedir.IndexDir, storedir.SnapshotFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("recovery: %w", err)
		}
		if err := projector.WriteCheckpoint(vfs.OS, c.dir, storedir.Checkpoint{Position: c.head, TagEntries: tagEntries, IDs: c.idx.IDs() > 0}); err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("write the checkpoint at position %d", c.head))
	} else if cpBad && c.collect {
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("write the checkpoint at position %d", c.head))
	}
	return nil
}

// tagEntriesUpTo returns the number of tag entries at or below pos the WAL
// implies.
func (c *checker) tagEntriesUpTo(pos uint64) int {
	if !c.choice.TagIndex {
		return 0
	}
	n := 0
	for _, ps := range c.idx.Tags() {
		n += upTo(ps, pos)
	}
	return n
}

// upTo returns how many of the sorted positions ps are at or below pos.
func upTo(ps []uint64, pos uint64) int {
	i, _ := slices.BinarySearch(ps, pos+1)
	return i
}

func (c *checker) strayEvents(rep *Report) error {
	if !c.choice.EventFiles || c.beside {
		// Beside a writer, a file after the head may be of an event it
		// acknowledged since.
		return nil
	}
	dir := filepath.Join(c.dir, storedir.EventsDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	removed := 0
	for _, e := range ents {
		pos, ok := storedir.ParseEventFileName(e.Name())
		if !ok || pos <= c.head {
			continue
		}
		path := filepath.Join(dir, e.Name())
		rep.add(Problem{Kind: EventStray, Path: path, Detail: fmt.Sprintf("event file of position %d beyond the WAL's head %d", pos, c.head)})
		if c.fix {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("recovery: %w", err)
			}
		}
		removed++ // or, dry run, would remove
	}
	if removed > 0 && c.collect {
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("remove %d stray event files", removed))
	}
	return nil
}

// behindOnly reports whether the positions of an index file, ps, differ from
// want, those the WAL implies, only by lacking positions after a valid
// checkpoint: a projection behind, not damaged.
func (c *checker) behindOnly(ps, want []uint64) bool {
	return len(ps) >= upTo(want, c.behind) && len(ps) <= len(want) && slices.Equal(ps, want[:len(ps)])
}

// indexFiles compares the index files with the index the WAL implies, and
// returns the number of tag entries the WAL implies.
func (c *checker) indexFiles(rep *Report) (int, error) {
	tagEntries := 0
	for _, kind := range []struct {
		chosen bool
		dir    string
		want   map[string][]uint64
	}{{c.choice.TypeIndex, storedir.TypesDir, c.idx.Types()}, {c.choice.TagIndex, storedir.TagsDir, c.idx.Tags()}} {
		if !kind.chosen {
			continue
		}
		dir := filepath.Join(c.dir, storedir.IndexDir, kind.dir)
		if kind.dir == storedir.TagsDir {
			for _, ps := range kind.want {
				tagEntries += len(ps)
			}
		}
		if c.fix {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return 0, fmt.Errorf("recovery: %w", err)
			}
		}
		good := map[string]bool{}   // types or tags whose file is right
		behind := map[string]bool{} // whose file lacks positions after the checkpoint only
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("recovery: %w", err)
		}
		fixed := 0
		onDisk := map[string]bool{}
		for _, e := range ents {
			path := filepath.Join(dir, e.Name())
			name, ps, valid, err := indexer.ReadFile(path)
			if c.beside {
				// The writer appends to index files as it projects: a file
				// it has just created and not yet written, the entries of
				// positions after the head and a torn entry it is writing
				// are its own.
				if info, _ := e.Info(); err != nil && (info == nil || info.Size() == 0) {
					continue
				}
				ps = ps[:upTo(ps, c.head)]
			}
			onDisk[e.Name()] = true
			want, known := kind.want[name]
			var p Problem
			switch {
			case c.beside && err == nil && !known && len(ps) == 0:
				continue // of a type or tag first appended after the head
			case err != nil:
				p = Problem{Kind: IndexDiffers, Path: path, Detail: err.Error()}
			case storedir.IndexFileName(name) != e.Name():
				p = Problem{Kind: IndexStray, Path: path, Detail: fmt.Sprintf("file holds the index of %q, whose file is %s", name, storedir.IndexFileName(name))}
			case !known:
				p = Problem{Kind: IndexStray, Path: path, Detail: fmt.Sprintf("index of %q, which no event in the WAL has", name)}
			default:
				info, _ := e.Info()
				if info == nil {
					return 0, fmt.Errorf("recovery: %s vanished", path)
				}
				whole := c.beside || info.Size() == valid
				if slices.Equal(ps, want) && whole {
					good[name] = true
					continue
				}
				if c.behindOnly(ps, want) && whole {
					behind[name] = true // rewritten by a repair, not a problem
					continue
				}
				var detail string
				switch {
				case slices.Equal(ps, want):
					detail = fmt.Sprintf("index of %q ends in %d bytes of a torn entry", name, info.Size()-valid)
				case len(ps) == len(want):
					// Entries are numbered from 1, the way a reader counts them.
					i := 0
					for ps[i] == want[i] {
						i++
					}
					detail = fmt.Sprintf("index of %q lists %d positions, the WAL implies %d different ones (first difference at entry %d: %d vs %d)",
						name, len(ps), len(want), i+1, ps[i], want[i])
				default:
					detail = fmt.Sprintf("index of %q lists %d positions, the WAL implies %d", name, len(ps), len(want))
				}
				p = Problem{Kind: IndexDiffers, Path: path, Detail: detail}
			}
			rep.add(p)
			if p.Kind == IndexStray || err != nil {
				if c.fix {
					if err := os.Remove(path); err != nil {
						return 0, fmt.Errorf("recovery: %w", err)
					}
				}
				fixed++ // or, dry run, would remove
			}
		}
		for name, ps := range kind.want {
			if good[name] {
				continue
			}
			path := filepath.Join(dir, storedir.IndexFileName(name))
			missing := !onDisk[storedir.IndexFileName(name)]
			// Behind, not damaged: a file short of positions after the
			// checkpoint only, or absent when all of them are after it.
			pending := behind[name] || missing && c.behindOnly(nil, ps)
			if missing && !pending {
				rep.add(Problem{Kind: IndexMissing, Path: path, Detail: fmt.Sprintf("no index file for %q", name)})
			}
			if c.fix {
				if err := indexer.WriteFile(vfs.OS, path, filepath.Join(c.dir, storedir.TmpDir, storedir.IndexDir), name, ps); err != nil {
					return 0, fmt.Errorf("recovery: %w", err)
				}
			}
			if !pending {
				fixed++ // or, dry run, would rewrite
			}
		}
		if fixed > 0 && c.collect {
			rep.Repairs = append(rep.Repairs, fmt.Sprintf("rewrite or remove %d index files in %s", fixed, kind.dir))
		}
	}
	return tagEntries, nil
}
