package recovery

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
)

// The WAL's damage is repaired by wal.Repair, which loses exactly the
// events whose bytes fail their own checksums: the store's event files are
// the other copy it repairs them from (an event file repairs its event
// only where it encodes to the checksum the WAL stored for it), and the
// event files and index files say the type and tags of a lost event, which
// its marker keeps.

// planWALRepair is wal.PlanRepair of the store in dir, whose positions up
// to acked were acknowledged. With asked, it lists there the positions
// whose type and tags the repair asks for (Known), which repairWAL then
// reads from the index files.
func planWALRepair(dir string, acked uint64, progress func(string, uint64, uint64), asked *[]uint64) (*wal.RepairReport, error) {
	opts := wal.RepairOptions{Copy: eventCopy(dir), Acknowledged: acked, Progress: walProgress(progress, "reading the WAL")}
	if asked != nil {
		opts.Known = func(pos uint64) (string, []string, bool) {
			*asked = append(*asked, pos)
			return knownFromEventFile(dir, pos)
		}
	}
	rep, err := wal.PlanRepair(filepath.Join(dir, storedir.WALDir), opts)
	if err != nil {
		return nil, fmt.Errorf("recovery: %s: %w", dir, err)
	}
	return rep, nil
}

// repairWAL repairs the WAL of the store in dir (wal.Repair), the type and
// tags of the positions asked taken from the event and index files, and
// records what it lost in the LOST file, before the projection is touched.
func repairWAL(dir string, acked uint64, progress func(string, uint64, uint64), asked []uint64, rep *Report) error {
	known, err := knownTypes(dir, asked)
	if err != nil {
		return err
	}
	walDir := filepath.Join(dir, storedir.WALDir)
	wr, err := wal.Repair(walDir, wal.RepairOptions{Copy: eventCopy(dir), Known: known, Acknowledged: acked, Progress: walProgress(progress, "repairing the WAL")})
	if err != nil {
		return fmt.Errorf("recovery: repair %s: %w", dir, err)
	}
	rep.WALRepair, rep.Kept = wr, wr.Kept
	rep.Repairs = append(rep.Repairs, repairAction(wr))
	if wr.LostEvents == 0 {
		return nil
	}
	aside, err := keepLostEventFiles(dir, wr.Lost)
	if err != nil {
		return fmt.Errorf("recovery: repair %s: the WAL is repaired, but keeping aside the event files of lost positions failed: %w (run possum recover again)", dir, err)
	}
	if aside != "" {
		rep.Kept = append(rep.Kept, aside)
	}
	broken := make([]string, len(rep.Kept))
	for i, k := range rep.Kept {
		broken[i], _ = filepath.Rel(dir, k)
	}
	err = storedir.RecordLoss(vfs.OS, dir, storedir.Loss{Lost: wr.Lost, Events: wr.LostEvents, Why: lossReason(wr), Broken: broken})
	if err != nil {
		// The WAL holds the markers: a repair run again records them.
		return fmt.Errorf("recovery: repair %s: the WAL is repaired, but recording its loss failed: %w (run possum recover again)", dir, err)
	}
	rep.Repairs = append(rep.Repairs, fmt.Sprintf("record the loss of %s in %s", positionsOf(wr.Lost), storedir.LostFile))
	return nil
}

// keepLostEventFiles moves the event files of the lost positions that are
// not markers (events nothing verifies: their WAL bytes failed or were
// gone) into one directory of the store's LostEventsDir for this repair,
// "broken.<time>", named as they were, so that an operator can look at
// what they say rather than have the markers overwrite them. It returns
// that directory, or "" when it moved none. A repair run again finds only
// markers to leave.
func keepLostEventFiles(dir string, lost []storedir.Range) (string, error) {
	aside := filepath.Join(dir, storedir.LostEventsDir, storedir.BrokenSuffix())
	moved := 0
	for _, r := range lost {
		for pos := r.From; pos <= r.To; pos++ {
			path := storedir.EventPath(dir, pos)
			b, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return "", err
			}
			if se, err := storedir.DecodeEvent(b); err == nil && se.Lost {
				continue // a marker a repair wrote before
			}
			if moved == 0 {
				if err := vfs.OS.MkdirAll(aside, 0o750); err != nil {
					return "", err
				}
			}
			if err := vfs.OS.Rename(path, filepath.Join(aside, storedir.EventFileName(pos))); err != nil {
				return "", err
			}
			moved++
		}
	}
	if moved == 0 {
		return "", nil
	}
	for _, d := range []string{aside, filepath.Dir(aside), dir, filepath.Join(dir, storedir.EventsDir)} {
		if err := vfs.OS.SyncDir(d); err != nil {
			return "", err
		}
	}
	return aside, nil
}

// lossReason says why a repair lost events, for the LOST file: the
// damaged segments that lost them.
func lossReason(r *wal.RepairReport) string {
	var parts []string
	for _, d := range r.Damaged {
		lost := uint64(0)
		for _, rr := range d.Records {
			for _, l := range rr.Lost {
				lost += l.Count()
			}
		}
		if lost == 0 {
			continue
		}
		switch {
		case d.Missing:
			parts = append(parts, fmt.Sprintf("segment %s missing", d.Segment))
		case d.Unreadable != "":
			parts = append(parts, fmt.Sprintf("segment %s unreadable (%s)", d.Segment, d.Unreadable))
		default:
			parts = append(parts, fmt.Sprintf("segment %s damaged at offset %d (%s)", d.Segment, d.Offset, d.Reason))
		}
	}
	return "possum recover --allow-data-loss: WAL damage: " + strings.Join(parts, "; ") +
		": the events whose bytes failed their checksums and that no event file repaired are lost, their positions kept by lost markers"
}

// walProgress adapts progress to the WAL repair's callback (bytes).
func walProgress(progress func(string, uint64, uint64), what string) func(done, total int64) {
	if progress == nil {
		return nil
	}
	return func(done, total int64) { progress(what, uint64(done), uint64(total)) }
}

// eventCopy returns the Copy of a WAL repair: the event of the event file
// of a position, when it decodes as that position's event (not a marker).
func eventCopy(dir string) func(pos uint64) (dcb.Event, bool) {
	return func(pos uint64) (dcb.Event, bool) {
		b, err := os.ReadFile(storedir.EventPath(dir, pos))
		if err != nil {
			return dcb.Event{}, false
		}
		e, err := storedir.DecodeEvent(b)
		if err != nil || e.Position != pos || e.Lost {
			return dcb.Event{}, false
		}
		return e.Event, true
	}
}

// knownFromEventFile returns the type and tags of the marker in the event
// file of pos, when it is one of known type (a position lost before).
func knownFromEventFile(dir string, pos uint64) (string, []string, bool) {
	b, err := os.ReadFile(storedir.EventPath(dir, pos))
	if err != nil {
		return "", nil, false
	}
	e, err := storedir.DecodeEvent(b)
	if err != nil || e.Position != pos || !e.Lost || e.Type == "" {
		return "", nil, false
	}
	return e.Type, e.Tags, true
}

// knownTypes returns the Known of a WAL repair for the positions asked: the
// type and tags the event files (a marker's) or the index files still say
// each had. The index files are read once each, by binary search, for the
// positions asked only. A position of type "" (a marker of unknown type)
// or of no type stays unknown. Tags come in byte order: the index files do
// not keep an event's order of them.
func knownTypes(dir string, asked []uint64) (func(uint64) (string, []string, bool), error) {
	if len(asked) == 0 {
		return nil, nil
	}
	slices.Sort(asked)
	asked = slices.Compact(asked)
	var ranges [][2]uint64
	for _, p := range asked {
		if n := len(ranges); n > 0 && ranges[n-1][1]+1 == p {
			ranges[n-1][1] = p
			continue
		}
		ranges = append(ranges, [2]uint64{p, p})
	}
	type typeAndTags struct {
		typ  string
		tags []string
	}
	table := map[uint64]*typeAndTags{}
	for _, kind := range []string{storedir.TypesDir, storedir.TagsDir} {
		d := filepath.Join(dir, storedir.IndexDir, kind)
		ents, err := os.ReadDir(d)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("recovery: %w", err)
		}
		for _, e := range ents {
			name, ps, err := indexer.PositionsIn(filepath.Join(d, e.Name()), ranges)
			if err != nil || storedir.IndexFileName(name) != e.Name() {
				continue // a damaged index file says nothing
			}
			for _, p := range ps {
				k := table[p]
				if k == nil {
					if kind == storedir.TagsDir {
						continue // tags of a position of no known type
					}
					k = &typeAndTags{}
					table[p] = k
				}
				if kind == storedir.TypesDir {
					k.typ = name
				} else {
					k.tags = append(k.tags, name)
				}
			}
		}
	}
	return func(pos uint64) (string, []string, bool) {
		if typ, tags, ok := knownFromEventFile(dir, pos); ok {
			return typ, tags, true
		}
		k := table[pos]
		if k == nil || k.typ == indexer.UnknownType {
			return "", nil, false
		}
		tags := slices.Clone(k.tags)
		slices.Sort(tags)
		return k.typ, tags, true
	}, nil
}
