package recovery

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
)

// checker compares the projection with the WAL, event by event as the WAL
// is read, then index files, the LOST file and the checkpoint at the end;
// with fix, it repairs as it goes.
//
// It streams: what it keeps while the WAL is read is, per type and per
// tag, a count and a running hash of its positions (those after a valid
// checkpoint, which the projection may still lack, as a list: at most the
// projection lag), and the lost positions as ranges. Each index file is
// then read entry by entry and compared with its count and hash. Its
// memory so depends on the number of types and tags, never on the number
// of events; an index file to rewrite is written from a second read of the
// WAL, a bounded batch of positions at a time.
type checker struct {
	dir     string
	fix     bool
	collect bool // list the repairs (done or, without fix, to do) in the report
	// beside: a writer has the store open. The WAL is read up to what it
	// had acknowledged (head, once read); the projected files of later
	// positions, and index entries of them, are the writer's to write and
	// are not looked at. Never with fix.
	beside   bool
	progress func(what string, done, total uint64)
	cp       storedir.Checkpoint // as it was when the check began
	cpErr    error
	head     uint64
	total    uint64
	problems problemList
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

	// What the WAL implies for the index files, by type and by tag.
	types, tags map[string]*positions
	// tagEntries counts the tag positions, tagEntriesCp those at or below
	// the checkpoint's position.
	tagEntries, tagEntriesCp int
	ids                      bool             // an event carries an ID
	markers                  []storedir.Range // the lost positions, in order
	markerCount              uint64
}

// positions is what the checker keeps of the positions of one type or tag:
// a count and a running hash of those at or below behind, and the list of
// those after it.
type positions struct {
	n    uint64
	hash uint64
	tail []uint64
}

func (p *positions) add(pos, behind uint64) {
	if pos <= behind {
		p.n++
		p.hash = mixPosition(p.hash, pos)
		return
	}
	p.tail = append(p.tail, pos)
}

func (p *positions) count() uint64 { return p.n + uint64(len(p.tail)) }

// mixPosition is the running hash of a list of positions: order-dependent,
// and the lists are ascending (a splitmix64 step per position).
func mixPosition(h, pos uint64) uint64 {
	z := h ^ (pos + 0x9e3779b97f4a7c15)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// problemList keeps the problems found, at most maxListedPerKind of each
// kind, and how many of each: bounded, however many event files differ.
type problemList struct {
	counts map[string]int
	list   []Problem
}

func (l *problemList) add(p Problem) {
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[p.Kind]++
	if l.counts[p.Kind] <= maxListedPerKind {
		l.list = append(l.list, p)
	}
}

// newChecker returns a checker of the store in dir, whose checkpoint ack
// holds; with fix it repairs what it finds, with collect it lists the
// repairs (done or, without fix, to do); beside, it checks beside a writer.
func newChecker(dir string, ack acknowledgement, beside, fix, collect bool, progress func(what string, done, total uint64)) (*checker, error) {
	if beside && fix {
		return nil, errors.New("recovery: a repair beside a writer") // a bug
	}
	c := &checker{dir: dir, fix: fix, collect: collect, beside: beside, progress: progress,
		types: map[string]*positions{}, tags: map[string]*positions{}}
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
	// The total for the progress bar: what the store vouches for; the bar
	// grows past it if needed.
	c.total = ack.upTo
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

// list returns the positions kept of name in m, made on first use.
func list(m map[string]*positions, name string) *positions {
	p := m[name]
	if p == nil {
		p = &positions{}
		m[name] = p
	}
	return p
}

func (c *checker) event(r wal.Record) error {
	for i, e := range r.Events {
		pos := r.FirstPosition + uint64(i)
		if pos != c.head+1 {
			return fmt.Errorf("recovery: position %d after %d", pos, c.head) // wal.Verify checks it: a bug
		}
		c.head = pos
		list(c.types, e.Type).add(pos, c.behind)
		for _, tag := range e.Tags {
			list(c.tags, tag).add(pos, c.behind)
		}
		if c.choice.TagIndex {
			c.tagEntries += len(e.Tags)
			if pos <= c.cp.Position {
				c.tagEntriesCp += len(e.Tags)
			}
		}
		c.ids = c.ids || e.ID != ""
		se := r.Event(pos)
		if se.Lost {
			c.markers = storedir.AddRange(c.markers, pos, pos)
			c.markerCount++
		}
		if c.progress != nil && pos%4096 == 0 {
			c.progress(progressEvents, pos, max(c.total, pos))
		}
		if !c.choice.EventFiles {
			continue
		}
		c.buf = storedir.AppendEventFile(c.buf[:0], se)
		path := storedir.EventPath(c.dir, pos)
		got, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist) && pos > c.behind:
			c.pending++ // not yet projected
		case errors.Is(err, os.ErrNotExist):
			c.problems.add(Problem{Kind: EventMissing, Path: path, Detail: fmt.Sprintf("position %d has no event file", pos)})
		case err != nil:
			c.problems.add(Problem{Kind: EventDiffers, Path: path, Detail: err.Error()})
		case !bytes.Equal(got, c.buf):
			detail := fmt.Sprintf("event file of position %d does not match the WAL", pos)
			if se.Lost {
				detail = fmt.Sprintf("position %d is lost (a marker in the WAL), its event file is not the marker's", pos)
			}
			c.problems.add(Problem{Kind: EventDiffers, Path: path, Detail: detail})
		default:
			continue
		}
		if c.fix {
			if _, err := projector.WriteEventFile(vfs.OS, c.dir, se, c.buf); err != nil {
				return fmt.Errorf("recovery: %w", err)
			}
		}
		if pos <= c.behind || err == nil {
			c.rewrote++ // or, dry run, would rewrite
		}
	}
	if c.progress != nil {
		c.progress(progressEvents, c.head, max(c.total, c.head))
	}
	return nil
}

// progressEvents is what the progress callback is told while events are
// checked.
const progressEvents = "checking events"

// finish checks what only the whole WAL tells: stray event files, index
// files, the LOST file, the checkpoint.
func (c *checker) finish(rep *Report) error {
	for _, p := range c.problems.list {
		rep.add(p)
	}
	for k, n := range c.problems.counts {
		// rep.add counted the listed ones.
		rep.Counts[k] += n - min(n, maxListedPerKind)
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
	if err := c.indexFiles(rep); err != nil {
		return err
	}
	if err := c.lostFile(rep); err != nil {
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
	case cp.Position > c.head || cp.TagEntries != c.tagEntriesCp:
		if cp.Position != 0 || c.head != 0 {
			cpBad = true
			rep.add(Problem{Kind: CheckpointBad, Path: filepath.Join(c.dir, storedir.CheckpointFile),
				Detail: fmt.Sprintf("checkpoint says position %d with %d tag entries; the WAL has %d and %d", cp.Position, cp.TagEntries, c.head, c.tagEntries)})
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
		if err := projector.WriteCheckpoint(vfs.OS, c.dir, storedir.Checkpoint{Position: c.head, TagEntries: c.tagEntries, IDs: c.ids}); err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("write the checkpoint at position %d", c.head))
	} else if cpBad && c.collect {
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("write the checkpoint at position %d", c.head))
	}
	return nil
}

func (c *checker) strayEvents(rep *Report) error {
	if !c.choice.EventFiles || c.beside {
		// Beside a writer, a file after the head may be of an event it
		// acknowledged since.
		return nil
	}
	dir := filepath.Join(c.dir, storedir.EventsDir)
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	defer d.Close()
	removed := 0
	for {
		// A chunk of names at a time: events/ may hold millions.
		names, err := d.Readdirnames(4096)
		if len(names) == 0 {
			break
		}
		if err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
		for _, name := range names {
			pos, ok := storedir.ParseEventFileName(name)
			if !ok || pos <= c.head {
				continue
			}
			path := filepath.Join(dir, name)
			rep.add(Problem{Kind: EventStray, Path: path, Detail: fmt.Sprintf("event file of position %d beyond the WAL's head %d", pos, c.head)})
			if c.fix {
				if err := os.Remove(path); err != nil {
					return fmt.Errorf("recovery: %w", err)
				}
			}
			removed++ // or, dry run, would remove
		}
	}
	if removed > 0 && c.collect {
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("remove %d stray event files", removed))
	}
	return nil
}

// fileState is how an index file compares with what the WAL implies.
type fileState int

const (
	fileSame    fileState = iota
	fileBehind            // lacks positions after a valid checkpoint only
	fileDiffers           // lists other positions (detail says how)
)

// compareFile reads the index file r entry by entry and compares it with
// want, what the WAL implies: entries at or below behind by count and
// hash, those after it one by one. Beside a writer, entries after the head
// are the writer's and not looked at. It returns the state, the number of
// positions the file lists (up to the head beside a writer) and, when it
// differs, how.
func (c *checker) compareFile(r *indexer.FileReader, want *positions) (fileState, uint64, string, error) {
	var n, hash, listed uint64
	k := 0          // entries after behind that match want.tail
	extra := false  // an entry after behind that does not
	firstDiff := "" // where the entries after behind first differ
	for p, ok := r.Next(); ok; p, ok = r.Next() {
		if c.beside && p > c.head {
			break
		}
		listed++
		if p <= c.behind {
			n++
			hash = mixPosition(hash, p)
			continue
		}
		switch {
		case extra:
		case k < len(want.tail) && want.tail[k] == p:
			k++
		default:
			extra = true
			wantAt := "none"
			if k < len(want.tail) {
				wantAt = fmt.Sprint(want.tail[k])
			}
			firstDiff = fmt.Sprintf(" (first difference after the checkpoint: %d where the WAL implies %s)", p, wantAt)
		}
	}
	if err := r.Err(); err != nil {
		return fileDiffers, listed, "", err
	}
	switch {
	case n == want.n && hash == want.hash && !extra && k == len(want.tail):
		return fileSame, listed, "", nil
	case n == want.n && hash == want.hash && !extra:
		return fileBehind, listed, "", nil
	case listed == want.count():
		return fileDiffers, listed, fmt.Sprintf("lists %d positions, as many as the WAL implies, but other ones%s", listed, firstDiff), nil
	}
	return fileDiffers, listed, fmt.Sprintf("lists %d positions, the WAL implies %d%s", listed, want.count(), firstDiff), nil
}

// indexFiles compares the index files with what the WAL implies and, with
// fix, rewrites those that differ and removes strays.
func (c *checker) indexFiles(rep *Report) error {
	rewrite := map[string][]string{} // by kind, the names to write anew
	for _, kind := range []struct {
		chosen bool
		dir    string
		want   map[string]*positions
	}{{c.choice.TypeIndex, storedir.TypesDir, c.types}, {c.choice.TagIndex, storedir.TagsDir, c.tags}} {
		if !kind.chosen {
			continue
		}
		dir := filepath.Join(c.dir, storedir.IndexDir, kind.dir)
		if c.fix {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return fmt.Errorf("recovery: %w", err)
			}
		}
		good := map[string]bool{}   // types or tags whose file is right
		behind := map[string]bool{} // whose file lacks positions after the checkpoint only
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("recovery: %w", err)
		}
		fixed := 0
		onDisk := map[string]bool{}
		for _, e := range ents {
			path := filepath.Join(dir, e.Name())
			info, _ := e.Info()
			p, done, err := c.indexFile(path, e.Name(), info, kind.want, good, behind)
			if err != nil {
				return err
			}
			if done {
				continue
			}
			onDisk[e.Name()] = true
			rep.add(p)
			if p.Kind == IndexStray || p.Kind == IndexDiffers && p.unreadable {
				if c.fix {
					if err := os.Remove(path); err != nil {
						return fmt.Errorf("recovery: %w", err)
					}
				}
				fixed++ // or, dry run, would remove
			}
		}
		names := make([]string, 0, len(kind.want))
		for name := range kind.want {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if good[name] {
				continue
			}
			path := filepath.Join(dir, storedir.IndexFileName(name))
			missing := !onDisk[storedir.IndexFileName(name)]
			// Behind, not damaged: a file short of positions after the
			// checkpoint only, or absent when all of them are after it.
			pending := behind[name] || missing && kind.want[name].n == 0
			if missing && !pending {
				rep.add(Problem{Kind: IndexMissing, Path: path, Detail: fmt.Sprintf("no index file for %q", name)})
			}
			rewrite[kind.dir] = append(rewrite[kind.dir], name)
			if !pending {
				fixed++ // or, dry run, would rewrite
			}
		}
		if fixed > 0 && c.collect {
			rep.Repairs = append(rep.Repairs, fmt.Sprintf("rewrite or remove %d index files in %s", fixed, kind.dir))
		}
	}
	if c.fix && len(rewrite) > 0 {
		return c.rewriteIndex(rewrite)
	}
	return nil
}

// indexFile compares the index file at path, named name in its directory,
// with want. done: nothing to report (the file is right, behind, or the
// writer's); else the problem.
func (c *checker) indexFile(path, name string, info os.FileInfo, want map[string]*positions, good, behind map[string]bool) (Problem, bool, error) {
	r, err := indexer.OpenFile(path)
	if err != nil {
		if c.beside && (info == nil || info.Size() == 0) {
			// A file the writer has just created and not yet written.
			return Problem{}, true, nil
		}
		return Problem{Kind: IndexDiffers, Path: path, Detail: err.Error(), unreadable: true}, false, nil
	}
	defer r.Close()
	typ := r.Name()
	w, known := want[typ]
	if storedir.IndexFileName(typ) != name {
		return Problem{Kind: IndexStray, Path: path, Detail: fmt.Sprintf("file holds the index of %q, whose file is %s", typ, storedir.IndexFileName(typ))}, false, nil
	}
	if !known {
		if c.beside {
			// Of a type or tag first appended after the head?
			if p, ok := r.Next(); (!ok && r.Err() == nil) || (ok && p > c.head) {
				return Problem{}, true, nil
			}
		}
		return Problem{Kind: IndexStray, Path: path, Detail: fmt.Sprintf("index of %q, which no event in the WAL has", typ)}, false, nil
	}
	state, listed, detail, err := c.compareFile(r, w)
	if err != nil {
		return Problem{Kind: IndexDiffers, Path: path, Detail: err.Error(), unreadable: true}, false, nil
	}
	if info == nil {
		return Problem{}, false, fmt.Errorf("recovery: %s vanished", path)
	}
	whole := c.beside || info.Size() == r.Valid()
	switch {
	case state == fileSame && whole:
		good[typ] = true
		return Problem{}, true, nil
	case state == fileBehind && whole:
		behind[typ] = true // rewritten by a repair, not a problem
		return Problem{}, true, nil
	case state == fileSame:
		detail = fmt.Sprintf("ends in %d bytes of a torn entry", info.Size()-r.Valid())
	case state == fileBehind:
		detail = fmt.Sprintf("lists %d positions, the WAL implies %d, and ends in %d bytes of a torn entry", listed, w.count(), info.Size()-r.Valid())
	}
	return Problem{Kind: IndexDiffers, Path: path, Detail: fmt.Sprintf("index of %q %s", typ, detail)}, false, nil
}

// rewriteBatch bounds the positions rewriteIndex holds before it appends
// them to their files.
const rewriteBatch = 1 << 21

// rewriteIndex writes the index files of the given names (by kind) anew
// from a second read of the WAL: a batch of positions at a time appended
// to a file in tmp/ per name, then each renamed over its index file. Not
// fsync'd: the checkpoint written after it syncs the file system first.
func (c *checker) rewriteIndex(names map[string][]string) error {
	tmpDir := filepath.Join(c.dir, storedir.TmpDir, "reindex")
	if err := os.RemoveAll(tmpDir); err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	for kind := range names {
		if err := os.MkdirAll(filepath.Join(tmpDir, kind), 0o750); err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
	}
	wanted := map[string]map[string]bool{storedir.TypesDir: {}, storedir.TagsDir: {}}
	for kind, ns := range names {
		for _, n := range ns {
			wanted[kind][n] = true
		}
	}
	type key struct{ kind, name string }
	pending := map[key][]uint64{}
	held := 0
	created := map[key]bool{}
	var buf []byte
	flush := func() error {
		for k, ps := range pending {
			path := filepath.Join(tmpDir, k.kind, storedir.IndexFileName(k.name))
			f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
			if err != nil {
				return fmt.Errorf("recovery: %w", err)
			}
			buf, err = indexer.AppendEntries(f, k.name, !created[k], ps, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("recovery: rewrite index of %q: %w", k.name, err)
			}
			created[k] = true
		}
		clear(pending)
		held = 0
		return nil
	}
	_, err := wal.Verify(filepath.Join(c.dir, storedir.WALDir), func(r wal.Record) error {
		for i, e := range r.Events {
			pos := r.FirstPosition + uint64(i)
			if wanted[storedir.TypesDir][e.Type] {
				pending[key{storedir.TypesDir, e.Type}] = append(pending[key{storedir.TypesDir, e.Type}], pos)
				held++
			}
			for _, tag := range e.Tags {
				if wanted[storedir.TagsDir][tag] {
					pending[key{storedir.TagsDir, tag}] = append(pending[key{storedir.TagsDir, tag}], pos)
					held++
				}
			}
		}
		if held >= rewriteBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("recovery: rewrite index files: %w", err)
	}
	for kind, ns := range names {
		for _, n := range ns {
			name := storedir.IndexFileName(n)
			if err := os.Rename(filepath.Join(tmpDir, kind, name), filepath.Join(c.dir, storedir.IndexDir, kind, name)); err != nil {
				return fmt.Errorf("recovery: rewrite index: %w", err)
			}
		}
	}
	return os.RemoveAll(tmpDir)
}

// lostFile checks that the LOST file lists exactly the lost positions the
// WAL holds (up to the head): markers it does not list are recorded by a
// repair; positions it lists that are not lost are reported and left
// alone (the file is the store's history: possum never takes a line back).
func (c *checker) lostFile(rep *Report) error {
	rep.Markers, rep.MarkerCount = c.markers, c.markerCount
	losses, err := storedir.ReadLosses(c.dir)
	if err != nil {
		rep.add(Problem{Kind: LostFileBad, Path: filepath.Join(c.dir, storedir.LostFile), Detail: err.Error()})
	}
	recorded := clipRanges(storedir.LostRanges(losses), c.head)
	rep.Recorded = recorded
	if extra := subtractRanges(recorded, c.markers); len(extra) > 0 {
		rep.add(Problem{Kind: LostFileBad, Path: filepath.Join(c.dir, storedir.LostFile),
			Detail: fmt.Sprintf("LOST lists positions %s, which are not lost in the WAL (a LOST file edited, or copied from another store); possum leaves it as it is", formatRanges(extra))})
	}
	unrecorded := subtractRanges(c.markers, recorded)
	if len(unrecorded) == 0 {
		return nil
	}
	rep.add(Problem{Kind: LostUnrecorded, Path: filepath.Join(c.dir, storedir.LostFile),
		Detail: fmt.Sprintf("positions %s are lost (markers in the WAL), but LOST does not list them", formatRanges(unrecorded))})
	if c.collect {
		rep.Repairs = append(rep.Repairs, fmt.Sprintf("record lost positions %s in %s", formatRanges(unrecorded), storedir.LostFile))
	}
	if !c.fix {
		return nil
	}
	n := uint64(0)
	for _, r := range unrecorded {
		n += r.Count()
	}
	err = storedir.RecordLoss(vfs.OS, c.dir, storedir.Loss{Lost: unrecorded, Events: n,
		Why: "possum recover found these lost markers in the WAL, which LOST did not list (appended by a process or a repair that stopped before it recorded them)"})
	if err != nil {
		return fmt.Errorf("recovery: %w", err)
	}
	rep.Recorded = clipRanges(storedir.LostRanges(append(losses, storedir.Loss{Lost: unrecorded})), c.head)
	return nil
}

// clipRanges returns the part of the ordered ranges rs at or below head.
func clipRanges(rs []storedir.Range, head uint64) []storedir.Range {
	var out []storedir.Range
	for _, r := range rs {
		if r.From > head {
			break
		}
		out = append(out, storedir.Range{From: r.From, To: min(r.To, head)})
	}
	return out
}

// subtractRanges returns the positions of the ordered, merged ranges a that
// the ordered, merged ranges b do not hold, as ordered ranges.
func subtractRanges(a, b []storedir.Range) []storedir.Range {
	var out []storedir.Range
	j := 0
	for _, r := range a {
		for j < len(b) && b[j].To < r.From {
			j++
		}
		from := r.From
		for k := j; ; k++ {
			if k >= len(b) || b[k].From > r.To {
				out = storedir.AddRange(out, from, r.To)
				break
			}
			if b[k].From > from {
				out = storedir.AddRange(out, from, b[k].From-1)
			}
			if b[k].To >= r.To {
				break
			}
			from = max(from, b[k].To+1)
		}
	}
	return out
}

// formatRanges writes ranges as "3, 7..9", the first 20 of them and how
// many more.
func formatRanges(rs []storedir.Range) string {
	if len(rs) <= 20 {
		return storedir.FormatRanges(rs)
	}
	return fmt.Sprintf("%s and %d more ranges", storedir.FormatRanges(rs[:20]), len(rs)-20)
}
