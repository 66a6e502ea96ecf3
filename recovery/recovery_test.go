package recovery_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/internal/testkit/walmap"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// segSize makes the ~300 events of the fixture span several WAL segments.
const segSize = 4096

// fixtureEvents is the least number of events the fixture store holds.
const fixtureEvents = 300

// fixtureBatch returns the events of the n-th append (1-based) whose first
// event gets position first: 1 to 4 events, three types, a tag every event
// has and a tag shared by every fifth. With unique, each event also carries
// a tag of its batch alone, so that losing a whole record leaves a stray
// index file behind (only the last batches of the fixture have one: every
// index file is one more file to copy per test case).
func fixtureBatch(n int, first uint64, unique bool) []dcb.Event {
	evs := make([]dcb.Event, 1+n%4)
	for i := range evs {
		p := first + uint64(i)
		e := dcb.Event{
			Type: fmt.Sprintf("T%d", p%3),
			Tags: []string{"all", fmt.Sprintf("mod:%d", p%5)},
			Data: json.RawMessage(fmt.Sprintf(`{"pos":%d,"pad":%q}`, p, strings.Repeat("x", int(p*7%40)))),
		}
		if unique {
			e.Tags = append(e.Tags, fmt.Sprintf("batch:%d", n))
		}
		if p%4 == 0 {
			e.Metadata = map[string]string{"k": fmt.Sprintf("v%d", p)}
		}
		evs[i] = e
	}
	return evs
}

// buildFixture creates a closed store in dir holding at least fixtureEvents
// events across several segments, the last segment not empty, and returns
// every event as read back from the store.
func buildFixture(t *testing.T, dir string, min int) []dcb.SequencedEvent {
	t.Helper()
	ctx := context.Background()
	s, err := store.Open(dir, &store.Options{SegmentSize: segSize})
	require.NoError(t, err)
	for n := 1; s.Head() < uint64(min) || lastSegmentEmpty(t, dir); n++ {
		_, err := s.Append(ctx, fixtureBatch(n, s.Head()+1, s.Head()+40 > uint64(min)), nil)
		require.NoError(t, err)
	}
	acked := readAll(t, s)
	require.Len(t, acked, int(s.Head()))
	closeProjected(t, s)
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "fixture not consistent: %+v", rep.Problems)
	return acked
}

func lastSegmentEmpty(t *testing.T, dir string) bool {
	t.Helper()
	segs := walSegments(t, dir)
	return len(segs) == 0 || len(segs[len(segs)-1].recs) == 0
}

func readAll(t *testing.T, s *store.Store) []dcb.SequencedEvent {
	t.Helper()
	var evs []dcb.SequencedEvent
	for e, err := range s.Read(context.Background(), dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		evs = append(evs, e)
	}
	return evs
}

// walRec is one WAL entry: its tidwall length prefix starts at off, its
// frame ends at end; it holds positions first..last.
type walRec struct {
	off, end    int64
	first, last uint64
}

type walSeg struct {
	name, path string
	size       int64
	recs       []walRec
}

// walSegments parses every segment of the store in dir, which must be
// intact.
func walSegments(t *testing.T, dir string) []walSeg {
	t.Helper()
	walDir := filepath.Join(dir, "wal")
	ents, err := os.ReadDir(walDir)
	require.NoError(t, err)
	var segs []walSeg
	for _, e := range ents {
		if len(e.Name()) != 20 || strings.Trim(e.Name(), "0123456789") != "" {
			continue
		}
		path := filepath.Join(walDir, e.Name())
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		seg := walSeg{name: e.Name(), path: path, size: int64(len(data))}
		for off := 0; off < len(data); {
			n, un := binary.Uvarint(data[off:])
			require.Positive(t, un, "%s offset %d", path, off)
			end := off + un + int(n)
			r, err := wal.DecodeFrame(data[off+un : end])
			require.NoError(t, err, "%s offset %d", path, off)
			seg.recs = append(seg.recs, walRec{off: int64(off), end: int64(end), first: r.FirstPosition, last: r.LastPosition()})
			off = end
		}
		segs = append(segs, seg)
	}
	slices.SortFunc(segs, func(a, b walSeg) int { return strings.Compare(a.name, b.name) })
	return segs
}

// layout is what a damage function knows about the store before damage.
type layout struct {
	dir  string
	segs []walSeg
	head uint64
}

func (l layout) lastSeg() walSeg { return l.segs[len(l.segs)-1] }
func (l layout) lastRec() walRec {
	s := l.lastSeg()
	return s.recs[len(s.recs)-1]
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func kinds(counts map[string]int) []string {
	return slices.Sorted(maps.Keys(counts))
}

func sortedKinds(ks ...string) []string {
	out := slices.Clone(ks)
	slices.Sort(out)
	return out
}

func truncateFile(t *testing.T, path string, size int64) {
	t.Helper()
	require.NoError(t, os.Truncate(path, size))
}

func appendToFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func flipBit(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Less(t, off, int64(len(b)))
	b[off] ^= 0x10
	require.NoError(t, os.WriteFile(path, b, 0o640))
}

func eventPath(dir string, pos uint64) string {
	return filepath.Join(dir, "events", fmt.Sprintf("%020d.json", pos))
}

func indexPath(dir, kind, name string) string {
	return filepath.Join(dir, "index", kind, storedir.IndexFileName(name))
}

// damageCase is one kind of damage to a store and what recovery must make of
// it.
type damageCase struct {
	name   string
	damage func(t *testing.T, l layout)
	// kinds are the problem kinds Verify must report; counts, if set, the
	// exact number of some of them. repairKinds, if set, are those Repair
	// reports (the projection of the positions it lost shows only once
	// the WAL is repaired); nil: kinds.
	kinds       []string
	counts      func(l layout) map[string]int
	repairKinds []string
	// head is the head of the repaired store. nil: the fixture's head
	// (positions are kept, lost or not).
	head func(l layout) uint64
	// lost, if set, makes this a data-loss case: exactly the positions
	// Repair must refuse to lose, then lose when allowed (each kept by a
	// lost marker, of known type when the event files say it); every
	// other event is kept exactly.
	lost func(l layout) []storedir.Range
	// unknown: the lost positions' types are unknown (nothing says them);
	// fromIndex: the index files say them (tags then come in byte order).
	unknown, fromIndex bool
	// kept is the number of files Repair must keep aside.
	kept func(l layout) int
}

// tornTail damages the last record of the fixture's closed store. It looks
// like a torn write, but the checkpoint and the offsets file vouch that the
// record was acknowledged: its event files repair it, nothing is lost.
func tornTail(cut func(l layout) int64) damageCase {
	return damageCase{
		damage: func(t *testing.T, l layout) { truncateFile(t, l.lastSeg().path, cut(l)) },
		kinds:  sortedKinds(recovery.WALTornTail, recovery.WALLost),
		counts: func(l layout) map[string]int {
			return map[string]int{recovery.WALTornTail: 1, recovery.WALLost: 1}
		},
		kept: func(layout) int { return 1 },
	}
}

// segRange returns the positions of segment i.
func segRange(l layout, i int) []storedir.Range {
	s := l.segs[i]
	return []storedir.Range{{From: s.recs[0].first, To: s.recs[len(s.recs)-1].last}}
}

func damageCases() []damageCase {
	named := func(name string, c damageCase) damageCase { c.name = name; return c }
	one := func(kind string) func(layout) map[string]int {
		return func(layout) map[string]int { return map[string]int{kind: 1} }
	}
	return []damageCase{
		named("tail cut by 1 byte", tornTail(func(l layout) int64 { return l.lastSeg().size - 1 })),
		named("tail cut by 7 bytes", tornTail(func(l layout) int64 { return l.lastSeg().size - 7 })),
		named("tail cut by half the last record", tornTail(func(l layout) int64 {
			r := l.lastRec()
			return r.off + (r.end-r.off)/2
		})),
		{
			name:   "zero-filled tail",
			damage: func(t *testing.T, l layout) { appendToFile(t, l.lastSeg().path, make([]byte, 777)) },
			kinds:  []string{recovery.WALTornTail},
			counts: one(recovery.WALTornTail),
			kept:   func(layout) int { return 1 },
		},
		{
			name: "garbage tail",
			damage: func(t *testing.T, l layout) {
				rng := rand.New(rand.NewPCG(7, 7))
				b := make([]byte, 500)
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				appendToFile(t, l.lastSeg().path, b)
			},
			kinds:  []string{recovery.WALTornTail},
			counts: one(recovery.WALTornTail),
			kept:   func(layout) int { return 1 },
		},
		func() damageCase {
			c := tornTail(nil)
			c.name = "bit flip in the last record"
			c.damage = func(t *testing.T, l layout) {
				r := l.lastRec()
				flipBit(t, l.lastSeg().path, r.off+(r.end-r.off)/2)
			}
			return c
		}(),
		{
			name: "bit flip in an older segment",
			damage: func(t *testing.T, l layout) {
				s := l.segs[1]
				r := s.recs[len(s.recs)/2]
				flipBit(t, s.path, r.off+(r.end-r.off)/2)
			},
			// The event file repairs the event (or the record).
			kinds:  []string{recovery.WALCorrupt},
			counts: one(recovery.WALCorrupt),
			kept:   func(l layout) int { return 1 },
		},
		{
			name: "an event's data flipped, its event file deleted",
			damage: func(t *testing.T, l layout) {
				seg, rec, ok := walmap.Find(walmap.Map(t, filepath.Join(l.dir, "wal")), 150)
				require.True(t, ok)
				e := rec.Entries[150-rec.First]
				walmap.Flip(t, seg.Path, e[1]-2) // in its data
				require.NoError(t, os.Remove(eventPath(l.dir, 150)))
			},
			kinds: []string{recovery.WALCorrupt}, // the projection is checked once the WAL is repaired
			// Exactly that event, of the type and tags the index files
			// still say.
			lost:        func(layout) []storedir.Range { return []storedir.Range{{From: 150, To: 150}} },
			fromIndex:   true,
			repairKinds: sortedKinds(recovery.WALCorrupt, recovery.EventMissing),
			kept:        func(layout) int { return 1 },
		},
		{
			name:   "deleted middle segment",
			damage: func(t *testing.T, l layout) { require.NoError(t, os.Remove(l.segs[2].path)) },
			kinds:  []string{recovery.WALCorrupt},
			counts: one(recovery.WALCorrupt),
			// Nothing verifies a copy of bytes that are gone: lost, of
			// known type (the event files say it).
			lost:        func(l layout) []storedir.Range { return segRange(l, 2) },
			repairKinds: sortedKinds(recovery.WALCorrupt, recovery.EventMissing), // moved aside
			kept:        func(layout) int { return 1 },                           // the event files nothing verifies
		},
		{
			name: "leftover truncation markers",
			damage: func(t *testing.T, l layout) {
				require.NoError(t, copyFile(l.segs[1].path, l.segs[1].path+".START"))
				require.NoError(t, copyFile(l.lastSeg().path, l.lastSeg().path+".END"))
			},
			kinds:  []string{recovery.WALMarker},
			counts: func(layout) map[string]int { return map[string]int{recovery.WALMarker: 2} },
			kept:   func(layout) int { return 2 },
		},
		{
			name: "deleted event files",
			damage: func(t *testing.T, l layout) {
				for _, p := range []uint64{1, 150, l.head} {
					require.NoError(t, os.Remove(eventPath(l.dir, p)))
				}
			},
			kinds:  []string{recovery.EventMissing},
			counts: func(layout) map[string]int { return map[string]int{recovery.EventMissing: 3} },
		},
		{
			name: "event file with altered content",
			damage: func(t *testing.T, l layout) {
				path := eventPath(l.dir, 42)
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				altered := strings.Replace(string(b), `"pos":42`, `"pos":43`, 1)
				require.NotEqual(t, string(b), altered)
				require.NoError(t, os.Remove(path)) // a hard link to the fixture's
				require.NoError(t, os.WriteFile(path, []byte(altered), 0o640))
			},
			kinds:  []string{recovery.EventDiffers},
			counts: one(recovery.EventDiffers),
		},
		{
			name: "stray event files beyond head",
			damage: func(t *testing.T, l layout) {
				b, err := os.ReadFile(eventPath(l.dir, l.head))
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(eventPath(l.dir, l.head+1), b, 0o640))
				require.NoError(t, os.WriteFile(eventPath(l.dir, l.head+9), b, 0o640))
			},
			kinds:  []string{recovery.EventStray},
			counts: func(layout) map[string]int { return map[string]int{recovery.EventStray: 2} },
		},
		{
			name: "truncated index file",
			damage: func(t *testing.T, l layout) {
				path := indexPath(l.dir, storedir.TagsDir, "all")
				st, err := os.Stat(path)
				require.NoError(t, err)
				truncateFile(t, path, st.Size()-11) // one entry and a torn one
			},
			kinds:  []string{recovery.IndexDiffers},
			counts: one(recovery.IndexDiffers),
		},
		{
			name: "index file with a torn trailing entry",
			damage: func(t *testing.T, l layout) {
				appendToFile(t, indexPath(l.dir, storedir.TypesDir, "T2"), []byte{1, 2, 3})
			},
			kinds:  []string{recovery.IndexDiffers},
			counts: one(recovery.IndexDiffers),
		},
		{
			name:   "deleted index file",
			damage: func(t *testing.T, l layout) { require.NoError(t, os.Remove(indexPath(l.dir, storedir.TypesDir, "T1"))) },
			kinds:  []string{recovery.IndexMissing},
			counts: one(recovery.IndexMissing),
		},
		{
			name: "index file under a wrong name",
			damage: func(t *testing.T, l layout) {
				require.NoError(t, copyFile(indexPath(l.dir, storedir.TagsDir, "all"), indexPath(l.dir, storedir.TagsDir, "wrong")))
			},
			kinds:  []string{recovery.IndexStray},
			counts: one(recovery.IndexStray),
		},
		{
			name: "index file renamed",
			damage: func(t *testing.T, l layout) {
				require.NoError(t, os.Rename(indexPath(l.dir, storedir.TagsDir, "mod:3"), indexPath(l.dir, storedir.TagsDir, "mod:33")))
			},
			kinds:  sortedKinds(recovery.IndexStray, recovery.IndexMissing),
			counts: func(layout) map[string]int { return map[string]int{recovery.IndexStray: 1, recovery.IndexMissing: 1} },
		},
		{
			name: "corrupted checkpoint",
			damage: func(t *testing.T, l layout) {
				require.NoError(t, os.WriteFile(filepath.Join(l.dir, "checkpoint"), []byte(`{"version":1,"posi`), 0o640))
			},
			kinds:  []string{recovery.CheckpointBad},
			counts: one(recovery.CheckpointBad),
		},
		{
			name: "checkpoint beyond head",
			damage: func(t *testing.T, l layout) {
				b := fmt.Sprintf(`{"version":1,"position":%d,"tag_entries":5,"events_mtime":0}`+"\n", l.head+10)
				require.NoError(t, os.WriteFile(filepath.Join(l.dir, "checkpoint"), []byte(b), 0o640))
			},
			// The checkpoint vouches for positions the WAL lacks: they were
			// acknowledged, so they are lost (nothing tells a lying
			// checkpoint from a lost WAL tail), of unknown type.
			kinds:       []string{recovery.WALLost},
			counts:      one(recovery.WALLost),
			lost:        func(l layout) []storedir.Range { return []storedir.Range{{From: l.head + 1, To: l.head + 10}} },
			unknown:     true,
			head:        func(l layout) uint64 { return l.head + 10 },
			repairKinds: sortedKinds(recovery.WALLost, recovery.CheckpointBad, recovery.EventMissing, recovery.IndexMissing),
			kept:        func(layout) int { return 1 }, // the last segment, which the markers join
		},
		{
			name: "last segment deleted",
			damage: func(t *testing.T, l layout) {
				require.NoError(t, os.Remove(l.lastSeg().path))
			},
			kinds:       []string{recovery.WALLost},
			lost:        func(l layout) []storedir.Range { return segRange(l, len(l.segs)-1) },
			repairKinds: sortedKinds(recovery.WALLost, recovery.EventMissing),
			kept:        func(layout) int { return 1 },
		},
		{
			name:   "missing checkpoint",
			damage: func(t *testing.T, l layout) { require.NoError(t, os.Remove(filepath.Join(l.dir, "checkpoint"))) },
			kinds:  []string{recovery.CheckpointBad},
			counts: one(recovery.CheckpointBad),
		},
	}
}

func TestRepairDamage(t *testing.T) {
	tmpl := filepath.Join(t.TempDir(), "template")
	acked := buildFixture(t, tmpl, fixtureEvents)
	segs := walSegments(t, tmpl)
	require.GreaterOrEqual(t, len(segs), 5, "the fixture must span several segments")
	head := acked[len(acked)-1].Position

	for _, c := range damageCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each case works on its own copy of the fixture
			dir := filepath.Join(t.TempDir(), "store")
			testdir.CopyStore(t, tmpl, dir)
			l := layout{dir: dir, segs: walSegments(t, dir), head: head}
			c.damage(t, l)
			wantHead := head
			if c.head != nil {
				wantHead = c.head(l)
			}
			var lost []storedir.Range
			if c.lost != nil {
				lost = c.lost(l)
			}
			want := withMarkers(acked, lost, wantHead, c.unknown, c.fromIndex)
			before := testdir.Hash(t, dir)

			// Verify: the problems, and nothing changed.
			v, err := recovery.Verify(dir, nil)
			require.NoError(t, err)
			assert.False(t, v.Consistent())
			assert.Equal(t, c.kinds, kinds(v.Counts), "problems: %+v", v.Problems)
			if c.counts != nil {
				for k, n := range c.counts(l) {
					assert.Equal(t, n, v.Counts[k], "count of %s; problems: %+v", k, v.Problems)
				}
			}
			for _, p := range v.Problems {
				assert.NotEmpty(t, p.Detail)
				assert.Equal(t, lost != nil && (p.Kind == recovery.WALCorrupt || p.Kind == recovery.WALLost), p.DataLoss, "%+v", p)
			}
			require.Equal(t, before, testdir.Hash(t, dir), "Verify changed the store")

			if lost != nil {
				checkRefusal(t, dir, v, lost, before)
			} else {
				dry, err := recovery.Repair(dir, &recovery.Options{DryRun: true})
				require.NoError(t, err)
				assert.Equal(t, v.Counts, dry.Counts)
				assert.NotEmpty(t, dry.Repairs)
				if dry.WALRepair != nil {
					assert.Zero(t, dry.WALRepair.LostEvents)
				}
				assert.Empty(t, dry.Kept)
				require.Equal(t, before, testdir.Hash(t, dir), "Repair with DryRun changed the store")
			}

			// Repair.
			rep, err := recovery.Repair(dir, &recovery.Options{AllowDataLoss: lost != nil})
			require.NoError(t, err)
			wantKinds := c.kinds
			if c.repairKinds != nil {
				wantKinds = c.repairKinds
			}
			assert.Equal(t, wantKinds, kinds(rep.Counts), "problems: %+v", rep.Problems)
			assert.NotEmpty(t, rep.Repairs)
			assert.Equal(t, wantHead, rep.Head)
			if lost != nil {
				require.NotNil(t, rep.WALRepair)
				assert.Equal(t, lost, rep.WALRepair.Lost)
			} else if rep.WALRepair != nil {
				assert.Zero(t, rep.WALRepair.LostEvents)
			}
			assert.Equal(t, lost, rep.Markers, "the store's lost positions")
			wantKept := 0
			if c.kept != nil {
				wantKept = c.kept(l)
			}
			assert.Len(t, rep.Kept, wantKept, "kept: %v", rep.Kept)
			for _, k := range rep.Kept {
				if filepath.Dir(k) == filepath.Join(dir, storedir.LostEventsDir) {
					// The event files of the lost positions, moved aside
					// as they were rather than overwritten by markers.
					checkLostEventFiles(t, k, tmpl, lost)
					continue
				}
				assert.FileExists(t, k)
				assert.Contains(t, filepath.Base(k), ".broken.")
				assert.Equal(t, filepath.Join(dir, "wal"), filepath.Dir(k))
			}
			if c.name == "leftover truncation markers" {
				for _, m := range []string{l.segs[1].path + ".START", l.lastSeg().path + ".END"} {
					assert.NoFileExists(t, m)
				}
			}
			losses, err := storedir.ReadLosses(dir)
			require.NoError(t, err)
			assert.Equal(t, lost, storedir.LostRanges(losses), "LOST records the loss")

			after, err := recovery.Verify(dir, nil)
			require.NoError(t, err)
			require.True(t, after.Consistent(), "after repair: %+v", after.Problems)
			assert.Equal(t, wantHead, after.Head)
			assert.Equal(t, lost, after.Markers)
			assert.Equal(t, lost, after.Recorded)

			// The repaired store opens with nothing left to repair and holds
			// exactly the events it should.
			checkStore(t, dir, want)
		})
	}
}

// checkLostEventFiles checks that the directory aside holds exactly the
// event files the store tmpl had at the positions lost, byte for byte.
func checkLostEventFiles(t *testing.T, aside, tmpl string, lost []storedir.Range) {
	t.Helper()
	assert.True(t, strings.HasPrefix(filepath.Base(aside), "broken."), aside)
	var want, got []string
	for _, r := range lost {
		for pos := r.From; pos <= r.To; pos++ {
			want = append(want, storedir.EventFileName(pos))
			b, err := os.ReadFile(filepath.Join(aside, storedir.EventFileName(pos)))
			if assert.NoError(t, err) {
				orig, err := os.ReadFile(storedir.EventPath(tmpl, pos))
				require.NoError(t, err)
				assert.Equal(t, string(orig), string(b), "position %d's event file, as it was", pos)
			}
		}
	}
	entries, err := os.ReadDir(aside)
	require.NoError(t, err)
	for _, e := range entries {
		got = append(got, e.Name())
	}
	assert.Equal(t, want, got, "the event files of the lost positions, and only those")
}

// withMarkers returns the events 1..head: acked, but for the positions
// lost, each a marker (of the event's type and tags, or, unknown, of
// none).
func withMarkers(acked []dcb.SequencedEvent, lost []storedir.Range, head uint64, unknown, sorted bool) []dcb.SequencedEvent {
	out := make([]dcb.SequencedEvent, head)
	for i := range out {
		pos := uint64(i + 1)
		if i < len(acked) {
			out[i] = acked[i]
		}
		for _, r := range lost {
			if pos >= r.From && pos <= r.To {
				m := dcb.SequencedEvent{Position: pos, Lost: true}
				if !unknown {
					m.Type, m.Tags = acked[i].Type, acked[i].Tags
				}
				if sorted {
					m.Tags = slices.Sorted(slices.Values(m.Tags))
				}
				out[i] = m
			}
		}
	}
	return out
}

// checkRefusal checks the refusals of a data-loss repair and its dry run
// with the loss allowed; none of them may change the store.
func checkRefusal(t *testing.T, dir string, v *recovery.Report, lost []storedir.Range, before map[string]string) {
	t.Helper()
	require.NotNil(t, v.WALRepair, "Verify works out what a repair loses")
	assert.Equal(t, lost, v.WALRepair.Lost)
	at := storedir.FormatRanges(lost)
	found := false
	for _, p := range v.Problems {
		if p.DataLoss {
			found = true
			assert.Contains(t, p.Detail, at)
		}
	}
	assert.True(t, found, "no data-loss problem: %+v", v.Problems)

	for _, opts := range []recovery.Options{{}, {DryRun: true}} {
		rep, err := recovery.Repair(dir, &opts)
		require.ErrorIs(t, err, recovery.ErrDataLoss, "options %+v", opts)
		assert.Contains(t, err.Error(), at, "the error must name the positions at stake")
		require.NotNil(t, rep)
		require.NotNil(t, rep.WALRepair)
		assert.Equal(t, lost, rep.WALRepair.Lost)
		assert.False(t, rep.WALRepair.Written)
		assert.Empty(t, rep.Kept)
		require.Equal(t, before, testdir.Hash(t, dir), "a refused repair (%+v) changed the store", opts)
	}

	dry, err := recovery.Repair(dir, &recovery.Options{DryRun: true, AllowDataLoss: true})
	require.NoError(t, err)
	require.NotNil(t, dry.WALRepair)
	assert.Equal(t, lost, dry.WALRepair.Lost)
	assert.Equal(t, v.Counts, dry.Counts)
	assert.Empty(t, dry.Kept)
	require.Equal(t, before, testdir.Hash(t, dir), "a dry run with data loss allowed changed the store")
}

// checkStore opens the store in dir and checks that it needs no repair and
// holds exactly want; then that it takes appends and stays consistent.
func checkStore(t *testing.T, dir string, want []dcb.SequencedEvent) {
	t.Helper()
	s, err := store.Open(dir, &store.Options{SegmentSize: segSize})
	require.NoError(t, err)
	defer s.Close()
	or := s.OpenReport()
	assert.Nil(t, or.TornTail)
	assert.Empty(t, or.Projection.CheckpointProblem)
	assert.Empty(t, or.Projection.IndexRebuilt)
	assert.Empty(t, or.Projection.IndexDamaged)
	assert.Zero(t, or.Projection.StrayEventFiles)
	assert.Zero(t, or.Projection.MissingEventFiles)
	assert.Zero(t, or.Projection.IndexTrimmedBytes)
	assert.Zero(t, or.Projection.Replayed)

	head := uint64(len(want))
	require.Equal(t, head, s.Head())
	got := readAll(t, s)
	require.Equal(t, len(want), len(got))
	for i := range want {
		require.Equal(t, want[i], got[i], "position %d", i+1)
	}
	// Every type and tag query agrees with the events.
	for _, tag := range []string{"all", "mod:3"} {
		n := 0
		for _, e := range want {
			// A marker of unknown type might have matched any query.
			if slices.Contains(e.Tags, tag) || e.Lost && e.Type == "" {
				n++
			}
		}
		cnt := 0
		for _, err := range s.Read(context.Background(), dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}, store.ReadOptions{}) {
			require.NoError(t, err)
			cnt++
		}
		assert.Equal(t, n, cnt, "events tagged %q", tag)
	}

	last, err := s.Append(context.Background(), fixtureBatch(100000, head+1, true), nil)
	require.NoError(t, err)
	require.Greater(t, last, head)
	closeProjected(t, s)
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "after reopen and append: %+v", rep.Problems)
	assert.Equal(t, last, rep.Head)
}

func TestLockedStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildFixture(t, dir, 20)
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	before := testdir.Hash(t, dir)

	// Verify and a dry run check beside the writer; a repair is refused.
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.BesideWriter)
	rep, err = recovery.Repair(dir, &recovery.Options{DryRun: true})
	require.NoError(t, err)
	assert.True(t, rep.BesideWriter)
	for _, opts := range []recovery.Options{{}, {AllowDataLoss: true}} {
		_, err = recovery.Repair(dir, &opts)
		require.ErrorIs(t, err, store.ErrLocked, "options %+v", opts)
		assert.Contains(t, err.Error(), dir)
	}
	require.Equal(t, before, testdir.Hash(t, dir))

	// Once the writer is gone, both run.
	closeProjected(t, s)
	rep, err = recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	rep, err = recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
}

// A writer that opens the store while a repair holds it is refused, and a
// Verify (shared lock) does not keep another Verify out.
func TestVerifyHoldsTheLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildFixture(t, dir, 10)
	var during error
	var nested *recovery.Report
	var nestedErr error
	rep, err := recovery.Verify(dir, &recovery.Options{Progress: func(_ string, done, total uint64) {
		if during == nil && nested == nil {
			var s *store.Store
			s, during = store.Open(dir, nil)
			if during == nil {
				s.Close()
			}
			nested, nestedErr = recovery.Verify(dir, nil)
		}
	}})
	require.NoError(t, err)
	assert.True(t, rep.Consistent())
	require.ErrorIs(t, during, store.ErrLocked, "a writer opened the store during Verify")
	require.NoError(t, nestedErr)
	assert.True(t, nested.Consistent())
}

func TestNotAStore(t *testing.T) {
	empty := t.TempDir()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o640))
	walFile := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(walFile, "wal"), []byte("x"), 0o640))
	for _, dir := range []string{empty, filepath.Join(empty, "missing"), file, walFile} {
		before := testdir.Hash(t, filepath.Dir(dir))
		_, err := recovery.Verify(dir, nil)
		require.Error(t, err, dir)
		assert.Contains(t, err.Error(), "not a possum store")
		assert.Contains(t, err.Error(), dir)
		for _, opts := range []recovery.Options{{}, {DryRun: true}, {AllowDataLoss: true}} {
			_, err = recovery.Repair(dir, &opts)
			require.Error(t, err, dir)
			assert.Contains(t, err.Error(), "not a possum store")
		}
		assert.Equal(t, before, testdir.Hash(t, filepath.Dir(dir)), "%s: nothing may be created", dir)
	}
}

// An empty store (opened and closed, no events) is consistent, and Repair
// keeps it so.
func TestEmptyStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	closeProjected(t, s)
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Zero(t, rep.Head)
	rep, err = recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	rep, err = recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
}

// An index file listing as many positions as the WAL implies, but other
// ones, is reported with the first entry that differs, not as a count
// mismatch that reads like none.
func TestIndexSameCountOtherPositions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	for p := 1; p <= 30; p++ {
		tags := []string{"all"}
		if p%2 == 0 {
			tags = append(tags, "even")
		}
		_, err := s.Append(context.Background(), []dcb.Event{{Type: "T", Tags: tags}}, nil)
		require.NoError(t, err)
	}
	closeProjected(t, s)

	path := indexPath(dir, storedir.TagsDir, "even")
	name, ps, _, err := indexer.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "even", name)
	require.Len(t, ps, 15)
	require.Equal(t, uint64(12), ps[5])
	ps[5] = 13 // still in order, same count
	require.NoError(t, indexer.WriteFile(vfs.OS, path, path+".tmp", name, ps))

	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.Len(t, rep.Problems, 1, "%+v", rep.Problems)
	p := rep.Problems[0]
	assert.Equal(t, recovery.IndexDiffers, p.Kind)
	assert.Equal(t, path, p.Path)
	assert.Equal(t, `index of "even" lists 15 positions, as many as the WAL implies, but other ones`, p.Detail)

	rep, err = recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Counts[recovery.IndexDiffers])
	rep, err = recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
}

// TestRepairInterruptedLeavesNoCheckpoint: a repair that stops half way (here
// an event file it must rewrite cannot be renamed into place; a power cut
// is the real case) leaves no checkpoint behind to vouch for event files it
// may not have finished, so the next Open rewrites them all.
func TestRepairInterruptedLeavesNoCheckpoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	acked := buildFixture(t, dir, 50)
	require.NoError(t, os.Remove(eventPath(dir, 7)))
	require.NoError(t, os.Remove(eventPath(dir, 30)))
	// A non-empty directory where position 30's file goes: the rename fails.
	require.NoError(t, os.MkdirAll(filepath.Join(eventPath(dir, 30), "x"), 0o750))

	_, err := recovery.Repair(dir, nil)
	require.Error(t, err)
	assert.NoFileExists(t, filepath.Join(dir, "checkpoint"), "the old checkpoint vouched for files the repair was rewriting")

	require.NoError(t, os.RemoveAll(eventPath(dir, 30)))
	checkStoreRewritesAll(t, dir, acked)
}

// checkStoreRewritesAll opens the store in dir with no checkpoint and checks
// that Open projects every event file again and the projection then matches.
func checkStoreRewritesAll(t *testing.T, dir string, want []dcb.SequencedEvent) {
	t.Helper()
	s, err := store.Open(dir, &store.Options{SegmentSize: segSize})
	require.NoError(t, err)
	assert.Equal(t, uint64(len(want)), s.OpenReport().Projection.Replayed, "every event projected again")
	closeProjected(t, s)
	projectiontest.RequireMatches(t, dir, want)
}

// closeProjected waits until the projection holds every event, then closes
// s: Close itself does not wait for the projection backlog.
func closeProjected(t testing.TB, s *store.Store) {
	t.Helper()
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	require.NoError(t, s.Close())
}

// TestLostFileAgrees: verify checks that LOST lists exactly the store's
// lost positions. Markers it does not list (their line never written) are
// a problem a repair fixes by recording them; positions it lists that are
// not lost are a problem a repair leaves alone (LOST is the store's
// history: possum never takes a line back).
func TestLostFileAgrees(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = s.Append(ctx, []dcb.Event{{Type: "A"}, {Type: "B"}}, nil)
	require.NoError(t, err)
	_, err = s.AppendLost(ctx, 2, []dcb.Event{{}, {Type: "C", Tags: []string{"t"}}}, "")
	require.NoError(t, err)
	closeProjected(t, s)
	lost := []storedir.Range{{From: 3, To: 4}}

	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Equal(t, lost, rep.Markers)
	assert.Equal(t, uint64(2), rep.MarkerCount)
	assert.Equal(t, lost, rep.Recorded)

	lostFile := filepath.Join(dir, storedir.LostFile)
	require.NoError(t, os.Remove(lostFile))
	rep, err = recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{recovery.LostUnrecorded: 1}, rep.Counts)
	assert.Contains(t, rep.Problems[0].Detail, "positions 3..4 are lost")
	rep, err = recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{recovery.LostUnrecorded: 1}, rep.Counts)
	losses, err := storedir.ReadLosses(dir)
	require.NoError(t, err)
	require.Len(t, losses, 1)
	assert.Equal(t, lost, losses[0].Lost)
	rep, err = recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)

	require.NoError(t, storedir.RecordLoss(vfs.OS, dir, storedir.Loss{Lost: []storedir.Range{{From: 1, To: 1}}, Events: 1, Why: "edited"}))
	before := testdir.Hash(t, dir)
	rep, err = recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{recovery.LostFileBad: 1}, rep.Counts)
	assert.Contains(t, rep.Problems[0].Detail, "LOST lists positions 1, which are not lost")
	b, err := os.ReadFile(lostFile)
	require.NoError(t, err)
	require.NotEmpty(t, before["LOST"])
	assert.Equal(t, before["LOST"], testdir.Hash(t, dir)["LOST"], "left alone: %s", b)
}
