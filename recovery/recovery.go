package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/possumstore/possum/internal/sys/vfs"
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
	WALCorrupt       = "wal-corrupt"        // damage in the middle of the log, or a missing segment
	WALLost          = "wal-lost"           // the WAL ends before positions that were acknowledged
	WALMarker        = "wal-marker"         // leftover tidwall truncation marker
	EventMissing     = "event-missing"      // an event file is missing
	EventDiffers     = "event-differs"      // an event file does not match the WAL
	EventStray       = "event-stray"        // an event file beyond the WAL's head
	IndexMissing     = "index-missing"      // no index file for a type or tag
	IndexDiffers     = "index-differs"      // an index file lists the wrong positions
	IndexStray       = "index-stray"        // an index file for no type or tag in the WAL
	CheckpointBad    = "checkpoint-invalid" // missing, unreadable, or inconsistent
	LostUnrecorded   = "lost-unrecorded"    // lost positions in the WAL that the LOST file does not list: recorded by a repair
	LostFileBad      = "lost-file"          // the LOST file cannot be read, or lists positions that are not lost: left alone
	maxListedPerKind = 20
)

// Problem is one thing wrong with a store.
type Problem struct {
	Kind   string `json:"kind"`
	Path   string `json:"path,omitempty"`
	Detail string `json:"detail"`
	// DataLoss: repairing it loses acknowledged events.
	DataLoss bool `json:"dataLoss,omitempty"`

	unreadable bool // an index file that cannot be read: removed and written anew
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
	// WALRepair is what a repair of the WAL's damage finds and does
	// (Verify and a dry run: would do), when the WAL has damage that Open
	// does not repair by itself: exactly the positions it loses (each
	// kept by a lost marker), the events it repairs from their event
	// files, and, per damaged segment, where the damage is and what in it
	// still verifies. nil when the WAL needs no such repair.
	WALRepair *wal.RepairReport `json:"walRepair,omitempty"`
	// Markers lists the store's lost positions (dcb.SequencedEvent.Lost),
	// found by reading the WAL (after a repair: those it made too), as
	// ranges; MarkerCount counts them. Recorded is what the LOST file
	// lists, up to Head.
	Markers     []storedir.Range `json:"markers,omitempty"`
	MarkerCount uint64           `json:"markerCount,omitempty"`
	Recorded    []storedir.Range `json:"recorded,omitempty"`
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
	// Progress, if set, is called as the work goes on: what is being done
	// ("checking events", "reading the WAL", ...), and how much of it,
	// done of total (events, or bytes of the WAL).
	Progress func(what string, done, total uint64)
	// DryRun: Repair reports what it would do and changes nothing.
	DryRun bool
	// AllowDataLoss: Repair may repair damage that loses events: each
	// event whose bytes fail their own checksum, and that its event file
	// does not repair, is lost, its position kept by a lost marker; every
	// other event keeps its position and its bytes.
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
// had acknowledged (see Report.BesideWriter). Where the WAL has damage, it
// also works out what a repair would do (Report.WALRepair): which
// positions it would lose, exactly.
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
	if needsWALRepair(dir, wrep, ack.upTo) {
		if rep.WALRepair, err = planWALRepair(dir, ack.upTo, o.Progress, nil); err != nil {
			return nil, err
		}
	}
	addWALProblems(rep, wrep, ack.upTo)
	if rep.WALRepair != nil && walDamaged(wrep, ack.upTo) {
		// The projection is checked against the WAL's valid part; a repair
		// keeps every position after it too: the files of those are no
		// strays, and the index files and checkpoint are checked once the
		// WAL is repaired.
		c.checkWALEvents(rep)
	} else if err := c.finish(rep); err != nil {
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

// walDamaged reports whether the WAL w has damage that Open refuses: in
// the middle of the log, or a log that ends before acked, the last
// position the store vouches was acknowledged.
func walDamaged(w wal.VerifyReport, acked uint64) bool {
	return w.Damage != nil && !w.Damage.Torn || acked > w.LastPosition
}

// needsWALRepair reports whether the WAL in dir, which verified as w,
// needs wal.Repair: damage (a torn tail too), a log short of acked,
// leftover truncation markers, or a repair left unfinished.
func needsWALRepair(dir string, w wal.VerifyReport, acked uint64) bool {
	_, err := os.Stat(filepath.Join(dir, storedir.WALDir, wal.RepairingFile))
	return w.Damage != nil || len(w.Markers) > 0 || acked > w.LastPosition || err == nil
}

// addWALProblems reports the WAL's damage; acked is the last position the
// checkpoint or the offsets file vouch for. rep.WALRepair, when set, says
// what a repair loses.
func addWALProblems(rep *Report, w wal.VerifyReport, acked uint64) {
	for _, m := range w.Markers {
		rep.add(Problem{Kind: WALMarker, Path: filepath.Join(rep.Dir, storedir.WALDir, m), Detail: "leftover truncation marker; the segments hold the data, it can be moved aside"})
	}
	loss, lossy := "", false
	if r := rep.WALRepair; r != nil {
		loss, lossy = repairOutcome(r), r.LostEvents > 0
	}
	if d := w.Damage; d != nil {
		p := Problem{Path: filepath.Join(rep.Dir, storedir.WALDir, d.Segment)}
		if d.Torn {
			p.Kind, p.Detail = WALTornTail, fmt.Sprintf("torn tail at offset %d: %s", d.Offset, d.Reason)
		} else {
			p.Kind, p.DataLoss = WALCorrupt, lossy
			p.Detail = fmt.Sprintf("damage at offset %d: %s; %s", d.Offset, d.Reason, loss)
		}
		rep.add(p)
	}
	// Mid-log damage already reports its loss; otherwise the WAL may still
	// end short of what was acknowledged (a truncated or deleted segment).
	if d := w.Damage; (d == nil || d.Torn) && acked > w.LastPosition {
		rep.add(Problem{Kind: WALLost, Path: filepath.Join(rep.Dir, storedir.WALDir), DataLoss: lossy,
			Detail: fmt.Sprintf("the WAL's valid part ends at position %d, but positions up to %d were acknowledged (the checkpoint or the WAL offsets file vouch for them); %s",
				w.LastPosition, acked, loss)})
	}
}

// repairOutcome says in a few words what the WAL repair r loses and
// repairs.
func repairOutcome(r *wal.RepairReport) string {
	s := "a repair loses nothing"
	if r.LostEvents > 0 {
		s = fmt.Sprintf("a repair loses %s: %s (each position kept by a lost marker; every other event is kept)", plural(r.LostEvents, "event"), positionsOf(r.Lost))
	}
	if r.Repaired > 0 {
		s += fmt.Sprintf(", and repairs %s from their event files", plural(r.Repaired, "event"))
	}
	return s
}

// repairAction says what the WAL repair r does (or, dry run, would do).
func repairAction(r *wal.RepairReport) string {
	var parts []string
	if r.LostEvents > 0 {
		parts = append(parts, fmt.Sprintf("lose %s (%s), each position kept by a lost marker (their event files, which nothing verifies, moved aside into %s/)",
			plural(r.LostEvents, "event"), positionsOf(r.Lost), storedir.LostEventsDir))
	}
	if r.Repaired > 0 {
		parts = append(parts, fmt.Sprintf("repair %s from their event files", plural(r.Repaired, "event")))
	}
	cut := int64(0)
	for _, d := range r.Damaged {
		cut += d.CutBytes
	}
	if cut > 0 {
		parts = append(parts, fmt.Sprintf("cut a torn tail of %d bytes", cut))
	}
	if len(r.Markers) > 0 {
		parts = append(parts, fmt.Sprintf("move %d leftover truncation markers aside", len(r.Markers)))
	}
	parts = append(parts, "keep every other event, its position and its bytes")
	return "repair the WAL: " + strings.Join(parts, "; ")
}

// positionsOf writes ranges as "position 7" or "positions 3, 7..9".
func positionsOf(rs []storedir.Range) string {
	if len(rs) == 1 && rs[0].From == rs[0].To {
		return fmt.Sprintf("position %d", rs[0].From)
	}
	return "positions " + formatRanges(rs)
}

// plural is n things: "1 event", "2 events".
func plural(n uint64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
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
	if needsWALRepair(dir, wrep, ack.upTo) {
		var asked []uint64 // the positions whose type and tags the repair wants known
		plan, err := planWALRepair(dir, ack.upTo, opts.Progress, &asked)
		if err != nil {
			return nil, err
		}
		rep.WALRepair = plan
		addWALProblems(rep, wrep, ack.upTo)
		if plan.LostEvents > 0 && !opts.AllowDataLoss {
			rep.WAL, rep.Head = wrep, wrep.LastPosition
			rep.Elapsed = time.Since(start)
			return rep, fmt.Errorf("%w: the WAL is damaged (%s); %s; nothing was changed (possum recover --allow-data-loss repairs it, losing exactly those)",
				ErrDataLoss, damageSummary(plan), repairOutcome(plan))
		}
		if opts.DryRun {
			rep.Repairs = append(rep.Repairs, repairAction(plan))
		} else {
			if err := repairWAL(dir, ack.upTo, opts.Progress, asked, rep); err != nil {
				return rep, err
			}
		}
	} else {
		addWALProblems(rep, wrep, ack.upTo)
	}

	// Then the projection, checked against the WAL and fixed.
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
		return rep, fmt.Errorf("recovery: repair %s: WAL still damaged after its repair: %+v", dir, vrep.Damage)
	}
	rep.WAL, rep.Head = wrep, wrep.LastPosition
	if !opts.DryRun {
		rep.WAL, rep.Head = vrep, vrep.LastPosition
	}
	if opts.DryRun && rep.WALRepair != nil && walDamaged(wrep, ack.upTo) {
		c.checkWALEvents(rep)
	} else if err := c.finish(rep); err != nil {
		return rep, err
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// checkWALEvents reports what the checker found in the event files of the
// WAL's valid part, when the rest of the projection cannot be checked
// until the WAL is repaired.
func (c *checker) checkWALEvents(rep *Report) {
	for _, p := range c.problems.list {
		rep.add(p)
	}
	for k, n := range c.problems.counts {
		rep.Counts[k] += n - min(n, maxListedPerKind)
	}
	rep.Markers, rep.MarkerCount = c.markers, c.markerCount
	if c.collect {
		rep.Repairs = append(rep.Repairs, "check and repair the event files, index files and checkpoint once the WAL is repaired")
	}
}

// damageSummary names where the WAL repair r found damage: the first
// damaged segment and how many more.
func damageSummary(r *wal.RepairReport) string {
	if len(r.Damaged) == 0 {
		return "no damage"
	}
	d := r.Damaged[0]
	s := fmt.Sprintf("segment %s at offset %d: %s", d.Segment, d.Offset, d.Reason)
	if d.Missing {
		s = fmt.Sprintf("segment %s is missing", d.Segment)
	}
	if len(r.Damaged) > 1 {
		s += fmt.Sprintf(", and %d more damaged segments", len(r.Damaged)-1)
	}
	return s
}
