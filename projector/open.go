package projector

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
)

// Config is what Open needs to know of a store besides its directory and
// its WAL.
type Config struct {
	// Checkpoint is the store's checkpoint as storedir.ReadCheckpoint
	// read it, and CheckpointErr the error it gave, if any. The WAL's
	// records up to the checkpoint's position were not scanned
	// (wal.Options.TrustPosition).
	Checkpoint    storedir.Checkpoint
	CheckpointErr error
	// Choice is the files to materialize: the store's recorded choice
	// (see ChangeChoice).
	Choice Choice
	// Logger receives what Open repairs and the projector's failures.
	Logger *slog.Logger
	// FS is where every change to the projection goes; nil: vfs.OS.
	FS vfs.FS
}

// Open prepares the projection of the store in dir for the WAL log. It
// returns the projector (not yet running) and the in-memory index of every
// event in the WAL.
func Open(dir string, log *wal.Log, cfg Config) (*Projector, *indexer.Index, Report, error) {
	cp, cpErr, choice, lg, fs := cfg.Checkpoint, cfg.CheckpointErr, cfg.Choice, cfg.Logger, cfg.FS
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
