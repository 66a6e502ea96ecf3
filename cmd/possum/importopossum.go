package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/opossum"
	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

const importOpossumHelp = `SRC is an Opossum store (a directory holding .ledger and events/) or its root
path holding several; DEST must not exist. One store becomes the possum store
DEST, a root becomes DEST/<store name> for each. Every event keeps its
position, type, tags ({key, value} as key:value, a ':' or '\' in a key escaped
with '\'), payload bytes ("$type" included), timestamp and metadata
(correlationId, causationId, operationId, userId); docs/OPOSSUM.md says how.
The import works in a temporary directory beside DEST and renames it at the
end: DEST appears complete or not at all. It takes Opossum's own lock
(.store.lock) for the moment it takes its snapshot, so an Opossum process may
go on appending; what it appends later is not imported, and the report says so.
Refused, nothing written (exit 1): a position without an event file (a gap, or
a ledger ahead of the files) unless --fill-gaps, a damaged event file (empty,
cut short, not JSON, or another shape). With --fill-gaps, each position
without an event file becomes a lost position's marker, as possum recover
leaves for an event lost to damage: the position stays, with no data; its
type and tags are the lost event's where Opossum's index files still say
them, else unknown (it matches every query). An append condition whose range
covers a marker fails, saying to read again; possum stats lists the markers
and the store's LOST file records them (docs/OPOSSUM.md).`

// opossumBatch is how many events import-opossum appends at a time (fewer
// when their bytes reach maxBatchBytes).
const opossumBatch = 1000

// shownProblems is how many problems of a context a report lists.
const shownProblems = 20

func importOpossumCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fillGaps := fs.Bool("fill-gaps", false, "keep each position without an event file as a lost position's marker (type and tags where Opossum's index files still say them) rather than refuse")
	return func(args []string, stdout, stderr io.Writer) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		im := &opossumImport{src: args[0], dest: args[1], fillGaps: *fillGaps}
		if !*asJSON {
			im.bar = newOpossumBar(stderr)
		}
		rep, err := im.run(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return err
			}
		} else {
			rep.print(stdout, stderr)
		}
		if !rep.Imported {
			return exitError{1}
		}
		return nil
	}
}

// opossumReport is what import-opossum found and did; --json prints it.
type opossumReport struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	// Imported says DEST was written; false: problems refused the import
	// and nothing was written.
	Imported bool `json:"imported"`
	Events   int  `json:"events"`
	// Markers counts the lost positions' markers of --fill-gaps.
	Markers uint64 `json:"markers,omitempty"`
	// Seconds is how long the import took, less the wait for the event
	// and index files.
	Seconds  float64                 `json:"seconds"`
	Contexts []*opossumContextReport `json:"contexts"`
	// Warnings are about DEST: what earlier imports left beside it.
	Warnings []string `json:"warnings,omitempty"`
}

// opossumContextReport is one Opossum store of an import.
type opossumContextReport struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Dest   string `json:"dest"`
	// Ledger is the ledger's position, LastFile the last event file's;
	// Cut, the higher, is the last position the import took.
	Ledger   uint64 `json:"ledger"`
	LastFile uint64 `json:"lastFile"`
	Cut      uint64 `json:"cut"`
	// Locked: the snapshot was taken under Opossum's lock (.store.lock,
	// Opossum 0.4.0 and later).
	Locked bool `json:"locked"`
	Events int  `json:"events"`
	// Lost are the positions --fill-gaps kept as lost positions' markers
	// (no event file), as ranges; Markers counts them, KnownMarkers those
	// with the type and tags Opossum's index files still say.
	Lost         []storedir.Range `json:"lost,omitempty"`
	Markers      uint64           `json:"markers,omitempty"`
	KnownMarkers int              `json:"knownMarkers,omitempty"`
	// Problems refuse the import; MoreProblems counts those not listed.
	Problems     []*opossum.Problem `json:"problems,omitempty"`
	MoreProblems uint64             `json:"moreProblems,omitempty"`
	Warnings     []string           `json:"warnings,omitempty"`

	problems uint64   // positions without an event, all of them
	dupTags  []string // "position: tags", the first few
	dups     int      // events with a duplicate tag
	snap     *opossum.Snapshot
	// lost is what Opossum's index files say of the positions without an
	// event file, read at the first of them.
	lost *opossum.Lost
}

// opossumImport is one run of import-opossum.
type opossumImport struct {
	src, dest string
	fillGaps  bool
	bar       *opossumBar
	// refused is set at the first problem: from then on the import only
	// reads, to report every problem, and appends nothing more.
	refused bool
	// waited is the time spent waiting for projections, which the rate in
	// the summary leaves out, as possum append's does.
	waited time.Duration
	// afterScan, when set, is called once every store is scanned, before
	// the import starts (for tests).
	afterScan func()
}

// run imports every context of src into a temporary directory beside dest,
// and renames it to dest when none has a problem. Problems are in the
// report; an error is a failure to run (nothing written either).
func (im *opossumImport) run(ctx context.Context) (*opossumReport, error) {
	start := time.Now()
	contexts, err := opossum.Find(im.src)
	if err != nil {
		return nil, err
	}
	root := len(contexts) > 1 || filepath.Clean(contexts[0].Dir) != filepath.Clean(im.src)
	if _, err := os.Lstat(im.dest); err == nil {
		return nil, fmt.Errorf("%s exists; import-opossum makes a new store there, nothing was written", im.dest)
	}
	rep := &opossumReport{Source: im.src, Dest: im.dest}
	var total uint64
	for _, c := range contexts {
		s, err := opossum.Scan(ctx, c, opossum.ScanOptions{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w; nothing was written", c.Name, err)
		}
		cr := &opossumContextReport{Name: c.Name, Source: c.Dir, Dest: im.dest, Ledger: s.Ledger,
			LastFile: s.LastFile, Cut: s.Cut, Locked: s.Locked, snap: s}
		if root {
			cr.Dest = filepath.Join(im.dest, c.Name)
		}
		rep.Contexts = append(rep.Contexts, cr)
		total += s.Cut
	}

	parent := filepath.Dir(filepath.Clean(im.dest))
	if err := os.MkdirAll(parent, 0o750); err != nil {
		return nil, err
	}
	tmpPrefix := "." + filepath.Base(filepath.Clean(im.dest)) + ".importing-"
	if left, _ := filepath.Glob(filepath.Join(parent, tmpPrefix+"*")); len(left) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s is what an import that did not finish (killed, or the machine stopped) left; it is not a store, remove it (unless an import into %s is running)",
			strings.Join(left, ", "), im.dest))
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix)
	if err != nil {
		return nil, err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o750); err != nil { // as store.Open makes a store's directory
		return nil, err
	}
	if im.afterScan != nil {
		im.afterScan()
	}
	im.bar.start(total)
	for _, cr := range rep.Contexts {
		dir := tmp
		if root {
			dir = filepath.Join(tmp, cr.Name)
		}
		if err := im.importContext(ctx, cr, dir); err != nil {
			im.bar.finish()
			return nil, fmt.Errorf("%s: %w; nothing was written", cr.Name, err)
		}
		rep.Events += cr.Events
		rep.Markers += cr.Markers
	}
	im.bar.finish()
	rep.Imported = !im.refused
	if rep.Imported {
		if err := os.Rename(tmp, im.dest); err != nil {
			return nil, fmt.Errorf("%w; nothing was written", err)
		}
		renamed = true
		if err := platform.SyncDir(parent); err != nil {
			return nil, err
		}
	} else {
		rep.Events, rep.Markers = 0, 0
		for _, cr := range rep.Contexts {
			cr.Events, cr.Markers, cr.KnownMarkers, cr.Lost = 0, 0, 0, nil // appended to the temporary store, now removed
		}
	}
	rep.Seconds = (time.Since(start) - im.waited).Seconds()
	return rep, nil
}

// importContext imports the snapshot of cr into a new store in dir: every
// position in order, stopping the appends at the first problem but reading
// on, to report every problem.
func (im *opossumImport) importContext(ctx context.Context, cr *opossumContextReport, dir string) error {
	s, err := store.Open(dir, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	var batch []dcb.Event
	batchLost := false // batch holds lost positions' markers
	batchBytes := 0
	flush := func() error {
		if len(batch) == 0 || im.refused {
			batch, batchBytes = batch[:0], 0
			return nil
		}
		after := uint64(cr.Events) + cr.Markers
		var last uint64
		var err error
		if batchLost {
			last, err = s.AppendLost(ctx, after, batch, "possum import-opossum --fill-gaps: no event file at these positions of the Opossum store "+cr.Source+
				" (a gap, or a ledger ahead of the event files); their type and tags are those Opossum's index files still said, else unknown")
		} else {
			last, err = s.Append(ctx, batch, nil)
		}
		if err != nil {
			return err
		}
		if want := after + uint64(len(batch)); last != want { // cannot happen: a new store, every position in order
			return fmt.Errorf("appended up to position %d, want %d", last, want)
		}
		if batchLost {
			cr.Markers += uint64(len(batch))
		} else {
			cr.Events += len(batch)
		}
		im.bar.add(len(batch))
		batch, batchBytes = batch[:0], 0
		return nil
	}
	if im.fillGaps {
		if cr.lost, err = cr.snap.Lost(); err != nil {
			return err
		}
	}
	for it, err := range cr.snap.Events(ctx) {
		if err != nil {
			return err
		}
		for e, lost := range im.take(cr, it) {
			if lost != batchLost {
				if err := flush(); err != nil {
					return err
				}
				batchLost = lost
			}
			batch = append(batch, e)
			if batchBytes += len(e.Data); len(batch) >= opossumBatch || batchBytes >= maxBatchBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if !im.refused {
		// As possum append does: a small store has its event and index
		// files when it appears, a large one leaves the rest to the next
		// writer to open it (reads do not need them).
		start := time.Now()
		wait, cancel := context.WithTimeout(ctx, projectionWait)
		_ = s.WaitProjected(wait, s.Head())
		cancel()
		im.waited += time.Since(start)
	}
	if err := s.Close(); err != nil {
		return err
	}
	cr.finish()
	return nil
}

// take returns the events to append for item it, each with lost set for a
// lost position's marker, recording in cr what it found: the event, the
// markers of a run of positions without files (made as they are appended:
// a ledger far ahead names many), or none for a problem.
func (im *opossumImport) take(cr *opossumContextReport, it opossum.Item) iter.Seq2[dcb.Event, bool] {
	p := it.Problem
	switch {
	case p != nil && p.Kind == opossum.Missing && im.fillGaps:
		last := p.Position + p.Positions() - 1
		cr.Lost = storedir.AddRange(cr.Lost, p.Position, last)
		return func(yield func(dcb.Event, bool) bool) {
			for pos := p.Position; pos <= last; pos++ {
				m := cr.lost.Marker(pos)
				if m.Type != "" {
					cr.KnownMarkers++
				}
				if !yield(m, true) {
					return
				}
			}
		}
	case p != nil:
		im.refused = true
		if cr.problems += p.Positions(); len(cr.Problems) < shownProblems {
			cr.Problems = append(cr.Problems, p)
		}
		return func(func(dcb.Event, bool) bool) {}
	}
	if len(it.DuplicateTags) > 0 {
		if cr.dups++; len(cr.dupTags) < 5 {
			cr.dupTags = append(cr.dupTags, fmt.Sprintf("%d: %s", it.Event.Position, strings.Join(it.DuplicateTags, ", ")))
		}
	}
	return func(yield func(dcb.Event, bool) bool) { yield(it.Event.Event, false) }
}

// finish sets cr's warnings from what the snapshot and the import found,
// and looks at the Opossum store once more for events appended since.
func (cr *opossumContextReport) finish() {
	s := cr.snap
	cr.MoreProblems = cr.problems
	for _, p := range cr.Problems {
		cr.MoreProblems -= p.Positions()
	}
	warn := func(format string, args ...any) { cr.Warnings = append(cr.Warnings, fmt.Sprintf(format, args...)) }
	switch {
	case s.LedgerProblem != "":
		warn("%s: positions taken from the event files, as Opossum itself advises for a corrupt ledger", s.LedgerProblem)
	case s.LastFile > s.Ledger && s.Ledger > 0:
		warn("the ledger says %d, event files go on to %d: positions %d..%d are from an append that crashed before it moved the ledger; imported, as Opossum 0.5.0 and later adopt them at their next append",
			s.Ledger, s.LastFile, s.Ledger+1, s.LastFile)
	}
	if cr.Markers > 0 {
		unknown := cr.Markers - uint64(cr.KnownMarkers)
		warn("kept %s without an event file (%s) as lost positions' markers, no data: %d of the type and tags Opossum's index files still say, %d unknown (they match every query); an append condition whose range covers one fails, saying to read again; possum stats lists them, and the store's %s file records them",
			plural(int(min(cr.Markers, math.MaxInt)), "position"), storedir.FormatRanges(cr.Lost), cr.KnownMarkers, unknown, storedir.LostFile)
		if cr.lost != nil && cr.lost.Unreadable != "" {
			warn("Opossum's index file %s: so every marker's type and tags are unknown (the file might have listed them)", cr.lost.Unreadable)
		}
	}
	if cr.dups > 0 {
		warn("a tag given more than once on %s (position: tags %s); possum keeps each tag once", plural(cr.dups, "event"), strings.Join(cr.dupTags, "; "))
	}
	if n := len(s.Leftovers); n > 0 {
		warn("left alone %s an interrupted Opossum write left (%s)", plural(n, "temporary file"), filepath.Base(s.Leftovers[0]))
	}
	if n := len(s.Strays); n > 0 {
		warn("left alone %s in the events directory that are not event files (%s)", plural(n, "file"), filepath.Base(s.Strays[0]))
	}
	ledger, last, err := s.Growth()
	switch {
	case err != nil:
		warn("could not look at the Opossum store after the import: %v", err)
	case max(ledger, last) > s.Cut:
		how := "under Opossum's lock, between two appends"
		if !s.Locked {
			how = "without a lock (this Opossum has no .store.lock), so an append in progress may be in part"
		}
		warn("the Opossum store was written during the import: it reaches position %d now; the import took it as it was at position %d, %s; positions %d..%d are not imported",
			max(ledger, last), s.Cut, how, s.Cut+1, max(ledger, last))
	}
}

// print writes the report for a person: per store what was imported and
// what to know, problems on stderr, and a summary line.
func (rep *opossumReport) print(stdout, stderr io.Writer) {
	for _, cr := range rep.Contexts {
		if rep.Imported {
			span := "no events"
			if n := uint64(cr.Events) + cr.Markers; n > 0 {
				span = plural(cr.Events, "event")
				if cr.Markers > 0 {
					span += " and " + lostMarkers(cr.Markers)
				}
				span += fmt.Sprintf(", positions 1..%d", n)
			}
			fmt.Fprintf(stdout, "%s: %s, into %s\n", cr.Name, span, cr.Dest)
			if note := projectionNote(cr.Dest, uint64(cr.Events)); note != "" {
				fmt.Fprintf(stdout, "  note: %s\n", note)
			}
		}
		for _, w := range cr.Warnings {
			fmt.Fprintf(stdout, "  note: %s\n", w)
		}
		if cr.problems == 0 {
			continue
		}
		fmt.Fprintf(stderr, "possum import-opossum: %s (%s): %s without an event:\n", cr.Name, cr.Source, plural(int(min(cr.problems, math.MaxInt)), "position"))
		for _, line := range problemLines(cr.Problems) {
			fmt.Fprintf(stderr, "  %s\n", line)
		}
		if cr.MoreProblems > 0 {
			fmt.Fprintf(stderr, "  and %d more\n", cr.MoreProblems)
		}
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(stdout, "note: %s\n", w)
	}
	if !rep.Imported {
		fmt.Fprintf(stderr, "possum import-opossum: nothing was written: %s was not created\n", rep.Dest)
		missing, damaged := false, false
		for _, cr := range rep.Contexts {
			for _, p := range cr.Problems {
				missing = missing || p.Kind == opossum.Missing
				damaged = damaged || p.Kind != opossum.Missing
			}
		}
		if missing {
			fmt.Fprintln(stderr, "possum import-opossum: to import the rest, run again with --fill-gaps: each position without an event file becomes a lost position's marker (the position stays, with no data; a condition over it fails, saying to read again; possum stats lists it; docs/OPOSSUM.md)")
		}
		if damaged {
			fmt.Fprintln(stderr, "possum import-opossum: a damaged event file: restore it from a backup; or move it out of the events directory (it is then a position without a file) and use --fill-gaps")
		}
		return
	}
	elapsed := time.Duration(rep.Seconds * float64(time.Second))
	what := plural(rep.Events, "event")
	if rep.Markers > 0 {
		what += " and " + lostMarkers(rep.Markers)
	}
	s := fmt.Sprintf("imported %s from %s into %s in %s", what, plural(len(rep.Contexts), "Opossum store"),
		rep.Dest, elapsed.Round(time.Millisecond))
	if elapsed >= time.Second {
		s += fmt.Sprintf(" (%.0f events/s)", float64(rep.Events)/elapsed.Seconds())
	}
	fmt.Fprintln(stdout, s)
}

// lostMarkers says n lost positions' markers.
func lostMarkers(n uint64) string {
	if n == 1 {
		return "1 lost position's marker"
	}
	return fmt.Sprintf("%d lost positions' markers", n)
}

// problemLines writes problems one a line, a run of positions without a
// file for the same reason as one line.
func problemLines(ps []*opossum.Problem) []string {
	var lines []string
	for i := 0; i < len(ps); {
		run := *ps[i]
		for i++; i < len(ps) && run.Kind == opossum.Missing && ps[i].Kind == opossum.Missing &&
			ps[i].Detail == run.Detail && ps[i].Position == run.Position+run.Positions(); i++ {
			run.Last = ps[i].Position + ps[i].Positions() - 1
		}
		lines = append(lines, run.Error())
	}
	return lines
}

// opossumBar is the progress of an import on a terminal: events imported
// of the events the snapshots hold. nil (no terminal) does nothing.
type opossumBar struct {
	out io.Writer
	bar *progressbar.ProgressBar
}

func newOpossumBar(stderr io.Writer) *opossumBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &opossumBar{out: stderr}
}

func (b *opossumBar) start(total uint64) {
	if b == nil || total == 0 {
		return
	}
	b.bar = progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(b.out),
		progressbar.OptionSetDescription("importing"), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
}

func (b *opossumBar) add(n int) {
	if b != nil && b.bar != nil {
		_ = b.bar.Add(n)
	}
}

func (b *opossumBar) finish() {
	if b != nil && b.bar != nil {
		_ = b.bar.Finish()
	}
}
