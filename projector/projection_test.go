package projector_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// awkwardTags must all get distinct index files.
var awkwardTags = []string{
	"a/b", "a_b", "A", "a", "..", ".", "_41", "a_2fb", "🦘", "🦘🦘", "course:c1", "with space", `back\slash`, "CON",
	strings.Repeat("x", 300), strings.Repeat("x", 299) + "y",
}

var fixtureTypes = []string{"Created", "created", "A", "a", "Type/With/Slash", "..", "Événement"}

// appendFixture appends about n events in batches of 1..10 with types, tags
// (duplicates included), data and metadata drawn from rng.
func appendFixture(t testing.TB, s *store.Store, rng *rand.Rand, n int) {
	t.Helper()
	datas := []json.RawMessage{nil, json.RawMessage(`{"i":1}`), json.RawMessage(" { \"spaced\" : [1, 2.50, \"x\"] }\n"), json.RawMessage(`"str\u00e9"`), json.RawMessage(`[]`), json.RawMessage(`null`)}
	for appended := 0; appended < n; {
		batch := make([]dcb.Event, 1+rng.IntN(10))
		for i := range batch {
			e := dcb.Event{Type: fixtureTypes[rng.IntN(len(fixtureTypes))], Data: datas[rng.IntN(len(datas))]}
			for range rng.IntN(4) {
				e.Tags = append(e.Tags, awkwardTags[rng.IntN(len(awkwardTags))])
			}
			if rng.IntN(3) == 0 {
				e.Metadata = map[string]string{"correlation": fmt.Sprint(appended + i), "user": "zoë \"quoted\""}
			}
			batch[i] = e
		}
		_, err := s.Append(context.Background(), batch, nil)
		require.NoError(t, err)
		appended += len(batch)
	}
}

// allEvents reads every event of s.
func allEvents(t testing.TB, s *store.Store) []dcb.SequencedEvent {
	t.Helper()
	var out []dcb.SequencedEvent
	for e, err := range s.Read(context.Background(), dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		out = append(out, e)
	}
	require.Len(t, out, int(s.Head()))
	return out
}

func openStore(t testing.TB, dir string, opts *store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// closeProjected waits until the projection holds every event, then closes
// s: Close itself does not wait for the projection backlog.
func closeProjected(t testing.TB, s *store.Store) {
	t.Helper()
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	require.NoError(t, s.Close())
}

// ---- tests ----

func TestProjectionAfterProjectedClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	appendFixture(t, s, rand.New(rand.NewPCG(1, 1)), 300)
	evs := allEvents(t, s)
	closeProjected(t, s)

	projectiontest.RequireMatches(t, dir, evs)
	cp, err := storedir.ReadCheckpoint(dir)
	require.NoError(t, err)
	assert.Equal(t, uint64(len(evs)), cp.Position, "checkpoint after Close")
	tagEntries := 0
	for _, e := range evs {
		tagEntries += len(e.Tags)
	}
	assert.Equal(t, tagEntries, cp.TagEntries, "checkpoint's tag entries")
	tmp, err := os.ReadDir(filepath.Join(dir, storedir.TmpDir))
	require.NoError(t, err)
	assert.Empty(t, tmp, "tmp/ after Close")
}

func TestProjectionAfterWaitProjected(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	appendFixture(t, s, rand.New(rand.NewPCG(2, 2)), 300)
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	st := s.Stats()
	assert.Zero(t, st.Lag, "lag after WaitProjected: %+v", st)
	assert.NoError(t, st.ProjectorErr)
	projectiontest.RequireMatches(t, dir, allEvents(t, s))

	// And again after more appends to the same index files.
	appendFixture(t, s, rand.New(rand.NewPCG(2, 3)), 100)
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	assert.Zero(t, s.Stats().Lag)
	projectiontest.RequireMatches(t, dir, allEvents(t, s))
}

func TestProjectionAwkwardNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	var batch []dcb.Event
	for i, tag := range awkwardTags {
		batch = append(batch, dcb.Event{Type: fixtureTypes[i%len(fixtureTypes)], Tags: []string{tag}})
	}
	_, err := s.Append(t.Context(), batch, nil)
	require.NoError(t, err)
	evs := allEvents(t, s)
	closeProjected(t, s)
	projectiontest.RequireMatches(t, dir, evs)

	for kind, names := range map[string][]string{storedir.TagsDir: awkwardTags, storedir.TypesDir: fixtureTypes} {
		seen := map[string]string{}
		for _, name := range names {
			fn := storedir.IndexFileName(name)
			if other, ok := seen[fn]; ok {
				t.Errorf("%s %q and %q share the file name %s", kind, name, other, fn)
			}
			seen[fn] = name
			assert.LessOrEqual(t, len(fn), 255, "file name of %q", name)
			assert.NotContains(t, fn, "/")
			got, ps, _, err := indexer.ReadFile(filepath.Join(dir, storedir.IndexDir, kind, fn))
			if assert.NoError(t, err, "%s %q", kind, name) {
				assert.Equal(t, name, got, "header name of %s", fn)
				assert.NotEmpty(t, ps)
			}
		}
		// Case-insensitive file systems: no two names may differ only in case.
		lower := map[string]string{}
		for fn, name := range seen {
			if other, ok := lower[strings.ToLower(fn)]; ok {
				t.Errorf("%s %q and %q get file names differing only in case", kind, name, other)
			}
			lower[strings.ToLower(fn)] = name
		}
	}
}

// TestProjectionRepair damages the projection of a closed store by hand and
// checks that Open repairs it, and says so in its report.
func TestProjectionRepair(t *testing.T) {
	t.Parallel()
	type fixture struct {
		dir  string
		evs  []dcb.SequencedEvent
		cp   storedir.Checkpoint
		head uint64
	}
	// biggest returns the path and size of the index file of kind with the
	// most positions.
	biggest := func(f fixture, kind string) (string, int64) {
		counts := map[string]int{}
		for _, e := range f.evs {
			if kind == storedir.TypesDir {
				counts[e.Type]++
			}
			for _, tag := range e.Tags {
				if kind == storedir.TagsDir {
					counts[tag]++
				}
			}
		}
		best := ""
		for name, n := range counts {
			if best == "" || n > counts[best] || n == counts[best] && name < best {
				best = name
			}
		}
		path := filepath.Join(f.dir, storedir.IndexDir, kind, storedir.IndexFileName(best))
		st, err := os.Stat(path)
		require.NoError(t, err)
		return path, st.Size()
	}
	truncate := func(kind string, by int64) func(t *testing.T, f fixture) {
		return func(t *testing.T, f fixture) {
			path, size := biggest(f, kind)
			require.NoError(t, os.Truncate(path, size-by))
		}
	}
	remove := func(kind string) func(t *testing.T, f fixture) {
		return func(t *testing.T, f fixture) {
			path, _ := biggest(f, kind)
			require.NoError(t, os.Remove(path))
		}
	}
	extend := func(kind string, tail func(f fixture) []byte) func(t *testing.T, f fixture) {
		return func(t *testing.T, f fixture) {
			path, _ := biggest(f, kind)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, append(b, tail(f)...), 0o640))
		}
	}
	beyondHead := func(f fixture) []byte { return binary.LittleEndian.AppendUint64(nil, f.head+1) }
	threeBytes := func(fixture) []byte { return []byte{1, 2, 3} }
	// unclean is damage done to a store whose last stop left no snapshot:
	// Open then reads every index file.
	unclean := func(damage func(t *testing.T, f fixture)) func(t *testing.T, f fixture) {
		return func(t *testing.T, f fixture) {
			damage(t, f)
			require.NoError(t, os.Remove(filepath.Join(f.dir, storedir.IndexDir, storedir.SnapshotFile)))
		}
	}
	writeCheckpoint := func(t *testing.T, dir string, b []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, storedir.CheckpointFile), b, 0o640))
	}
	clean := func(t *testing.T, f fixture, rep projector.Report) {
		assert.Equal(t, f.head, rep.Checkpoint)
		assert.Empty(t, rep.CheckpointProblem)
		assert.Empty(t, rep.IndexRebuilt)
		assert.Empty(t, rep.IndexDamaged)
		assert.Zero(t, rep.IndexTrimmedBytes)
		assert.Zero(t, rep.StrayEventFiles)
		assert.Zero(t, rep.MissingEventFiles)
		assert.Zero(t, rep.Replayed)
	}
	// repairedLate: Open trusts the snapshot of the clean Close without
	// looking at the index files; the projector finds and rewrites the
	// damaged ones (the files are checked after Close).
	repairedLate := func(t *testing.T, f fixture, rep projector.Report) {
		clean(t, f, rep)
		assert.True(t, rep.IndexFromSnapshot, "index read from the snapshot")
	}
	trimmed := func(bytes int64) func(t *testing.T, f fixture, rep projector.Report) {
		return func(t *testing.T, f fixture, rep projector.Report) {
			assert.Empty(t, rep.IndexRebuilt, "index files trimmed, not rebuilt")
			assert.False(t, rep.IndexFromSnapshot)
			assert.Equal(t, bytes, rep.IndexTrimmedBytes, "bytes trimmed")
			assert.Zero(t, rep.Replayed)
		}
	}
	rebuilt := func(trimmed int64) func(t *testing.T, f fixture, rep projector.Report) {
		return func(t *testing.T, f fixture, rep projector.Report) {
			assert.NotEmpty(t, rep.IndexRebuilt, "index files rebuilt")
			assert.False(t, rep.IndexFromSnapshot)
			assert.Equal(t, trimmed, rep.IndexTrimmedBytes, "bytes trimmed")
			assert.Equal(t, f.head, rep.Replayed, "the index is rebuilt from the whole WAL")
			assert.Empty(t, rep.CheckpointProblem)
			assert.Zero(t, rep.MissingEventFiles)
		}
	}
	startOver := func(problem string) func(t *testing.T, f fixture, rep projector.Report) {
		return func(t *testing.T, f fixture, rep projector.Report) {
			if problem == "" {
				assert.Empty(t, rep.CheckpointProblem)
			} else {
				assert.Contains(t, rep.CheckpointProblem, problem)
			}
			assert.Equal(t, f.head, rep.Replayed, "everything replayed")
			assert.True(t, rep.EventsListed)
			assert.Zero(t, rep.StrayEventFiles)
		}
	}
	// copyOverOther copies the biggest tag index file over another, of a
	// different size.
	copyOverOther := func(t *testing.T, f fixture) {
		path, size := biggest(f, storedir.TagsDir)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		ents, err := os.ReadDir(filepath.Dir(path))
		require.NoError(t, err)
		for _, ent := range ents {
			other := filepath.Join(filepath.Dir(path), ent.Name())
			st, err := os.Stat(other)
			require.NoError(t, err)
			if st.Size() != size {
				require.NoError(t, os.WriteFile(other, b, 0o640))
				return
			}
		}
		t.Fatal("no tag file of another size")
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, f fixture)
		report func(t *testing.T, f fixture, rep projector.Report)
	}{
		{"no damage", func(*testing.T, fixture) {}, func(t *testing.T, f fixture, rep projector.Report) {
			clean(t, f, rep)
			assert.False(t, rep.EventsListed, "events/ is unchanged since the checkpoint")
		}},
		{"some event files deleted", func(t *testing.T, f fixture) {
			for _, pos := range []uint64{1, 17, f.head / 2, f.head} {
				require.NoError(t, os.Remove(storedir.EventPath(f.dir, pos)))
			}
		}, func(t *testing.T, f fixture, rep projector.Report) {
			assert.True(t, rep.EventsListed)
			assert.Equal(t, 4, rep.MissingEventFiles)
			assert.Empty(t, rep.IndexRebuilt)
			assert.Zero(t, rep.Replayed)
		}},
		{"all event files deleted", func(t *testing.T, f fixture) {
			require.NoError(t, os.RemoveAll(filepath.Join(f.dir, storedir.EventsDir)))
			require.NoError(t, os.Mkdir(filepath.Join(f.dir, storedir.EventsDir), 0o750))
		}, func(t *testing.T, f fixture, rep projector.Report) {
			assert.True(t, rep.EventsListed)
			assert.Equal(t, int(f.head), rep.MissingEventFiles)
			assert.Empty(t, rep.IndexRebuilt)
		}},
		{"events directory deleted", func(t *testing.T, f fixture) {
			require.NoError(t, os.RemoveAll(filepath.Join(f.dir, storedir.EventsDir)))
		}, func(t *testing.T, f fixture, rep projector.Report) {
			assert.True(t, rep.EventsListed)
			assert.Equal(t, int(f.head), rep.MissingEventFiles)
		}},
		// Index files damaged after a clean Close: the projector finds
		// them by their sizes and rewrites them.
		{"type index truncated by 3 bytes", truncate(storedir.TypesDir, 3), repairedLate},
		{"tag index truncated by 3 bytes", truncate(storedir.TagsDir, 3), repairedLate},
		{"type index truncated by one entry", truncate(storedir.TypesDir, 8), repairedLate},
		{"tag index truncated by one entry", truncate(storedir.TagsDir, 8), repairedLate},
		{"type index file deleted", remove(storedir.TypesDir), repairedLate},
		{"tag index file deleted", remove(storedir.TagsDir), repairedLate},
		{"type index extended beyond head", extend(storedir.TypesDir, beyondHead), repairedLate},
		{"tag index extended beyond head", extend(storedir.TagsDir, beyondHead), repairedLate},
		{"tag index extended by 3 bytes", extend(storedir.TagsDir, threeBytes), repairedLate},
		{"every tag index file deleted", func(t *testing.T, f fixture) {
			require.NoError(t, os.RemoveAll(filepath.Join(f.dir, storedir.IndexDir, storedir.TagsDir)))
		}, repairedLate},
		{"stray tag index file", func(t *testing.T, f fixture) {
			path := filepath.Join(f.dir, storedir.IndexDir, storedir.TagsDir, storedir.IndexFileName("never-used"))
			require.NoError(t, indexer.WriteFile(vfs.OS, path, path+".tmp", "never-used", []uint64{1, 2}))
		}, repairedLate},
		{"index file under another tag's name", copyOverOther, repairedLate},
		// The same after an unclean stop (no snapshot): Open reads every
		// index file, trims what lies beyond the checkpoint and rebuilds
		// from the WAL when the counts fall short.
		{"type index truncated by 3 bytes after an unclean stop", unclean(truncate(storedir.TypesDir, 3)), rebuilt(5)},
		{"tag index truncated by 3 bytes after an unclean stop", unclean(truncate(storedir.TagsDir, 3)), rebuilt(5)},
		{"type index truncated by one entry after an unclean stop", unclean(truncate(storedir.TypesDir, 8)), rebuilt(0)},
		{"tag index truncated by one entry after an unclean stop", unclean(truncate(storedir.TagsDir, 8)), rebuilt(0)},
		{"type index file deleted after an unclean stop", unclean(remove(storedir.TypesDir)), rebuilt(0)},
		{"tag index file deleted after an unclean stop", unclean(remove(storedir.TagsDir)), rebuilt(0)},
		{"tag index extended beyond head after an unclean stop", unclean(extend(storedir.TagsDir, beyondHead)), trimmed(8)},
		{"tag index extended by 3 bytes after an unclean stop", unclean(extend(storedir.TagsDir, threeBytes)), trimmed(3)},
		// Damage that keeps a file's size escapes the stat check Open makes
		// when a clean Close left a snapshot; it is found when Open reads
		// every index file, as it does after an unclean stop (no snapshot),
		// and by possum verify.
		{"index header corrupted after an unclean stop", func(t *testing.T, f fixture) {
			path, _ := biggest(f, storedir.TagsDir)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			copy(b, "XXXX")
			require.NoError(t, os.WriteFile(path, b, 0o640))
			require.NoError(t, os.Remove(filepath.Join(f.dir, storedir.IndexDir, storedir.SnapshotFile)))
		}, func(t *testing.T, f fixture, rep projector.Report) {
			assert.Len(t, rep.IndexDamaged, 1)
			rebuilt(0)(t, f, rep)
		}},
		{"index file under another tag's name after an unclean stop", unclean(copyOverOther), func(t *testing.T, f fixture, rep projector.Report) {
			assert.Len(t, rep.IndexDamaged, 1)
			rebuilt(0)(t, f, rep)
		}},
		{"checkpoint is garbage", func(t *testing.T, f fixture) {
			writeCheckpoint(t, f.dir, []byte("{\"version\":1,\"posit\x00garbage"))
		}, startOver("damaged")},
		{"checkpoint deleted", func(t *testing.T, f fixture) {
			require.NoError(t, os.Remove(filepath.Join(f.dir, storedir.CheckpointFile)))
		}, startOver("")},
		// A checkpoint beyond the WAL's head vouches for lost positions:
		// Open refuses it (store.TestOpenRefusesLostPositions).
		{"stray event file beyond head", func(t *testing.T, f fixture) {
			e := f.evs[0]
			e.Position = f.head + 5
			require.NoError(t, os.WriteFile(storedir.EventPath(f.dir, e.Position), storedir.AppendEventFile(nil, e), 0o640))
		}, func(t *testing.T, f fixture, rep projector.Report) {
			assert.True(t, rep.EventsListed)
			assert.Equal(t, 1, rep.StrayEventFiles)
			assert.Zero(t, rep.MissingEventFiles)
			assert.Zero(t, rep.Replayed)
			assert.Empty(t, rep.IndexRebuilt)
		}},
		{"files left in tmp", func(t *testing.T, f fixture) {
			require.NoError(t, os.WriteFile(filepath.Join(f.dir, storedir.TmpDir, "event"), []byte(`{"position":`), 0o640))
			require.NoError(t, os.WriteFile(filepath.Join(f.dir, storedir.TmpDir, storedir.CheckpointFile), []byte(`{`), 0o640))
			require.NoError(t, os.MkdirAll(filepath.Join(f.dir, storedir.TmpDir, "sub", "dir"), 0o750))
		}, func(t *testing.T, f fixture, rep projector.Report) {
			clean(t, f, rep)
			tmp, err := os.ReadDir(filepath.Join(f.dir, storedir.TmpDir))
			require.NoError(t, err)
			assert.Empty(t, tmp, "Open clears tmp/")
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := fixture{dir: t.TempDir()}
			s := openStore(t, f.dir, &store.Options{NoSync: true})
			appendFixture(t, s, rand.New(rand.NewPCG(3, uint64(i))), 200)
			f.evs = allEvents(t, s)
			f.head = s.Head()
			closeProjected(t, s)
			var err error
			f.cp, err = storedir.ReadCheckpoint(f.dir)
			require.NoError(t, err)
			require.Equal(t, f.head, f.cp.Position)

			c.damage(t, f)

			s = openStore(t, f.dir, nil)
			rep := projector.Report(s.OpenReport().Projection)
			t.Logf("report: %+v", rep)
			c.report(t, f, rep)
			require.Equal(t, f.head, s.Head())
			got := allEvents(t, s)
			require.Equal(t, f.evs, got, "the WAL is untouched")
			closeProjected(t, s)
			projectiontest.RequireMatches(t, f.dir, f.evs)
			cp, err := storedir.ReadCheckpoint(f.dir)
			require.NoError(t, err)
			assert.Equal(t, f.head, cp.Position, "checkpoint after Close")

			// Once repaired, the next Open finds nothing to do.
			s = openStore(t, f.dir, nil)
			rep = projector.Report(s.OpenReport().Projection)
			clean(t, f, rep)
			assert.False(t, rep.EventsListed, "second Open after the repair lists events/ again: %+v", rep)
			closeProjected(t, s)
			projectiontest.RequireMatches(t, f.dir, f.evs)
		})
	}
}

func TestReadFromIndexFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	// Tag "every3" on every third event; tags with long names, whose headers
	// are large and not multiples of 8 long.
	long := []string{strings.Repeat("L", 1000), strings.Repeat("M", 1021), strings.Repeat("N", 1024), strings.Repeat("O", 2000), strings.Repeat("P", 2004)}
	var batch []dcb.Event
	for i := range 300 {
		e := dcb.Event{Type: "T"}
		if i%3 == 0 {
			e.Tags = append(e.Tags, "every3")
			e.Tags = append(e.Tags, long...)
		}
		batch = append(batch, e)
	}
	_, err := s.Append(t.Context(), batch, nil)
	require.NoError(t, err)
	closeProjected(t, s)

	for _, tag := range append([]string{"every3"}, long...) {
		path := filepath.Join(dir, storedir.IndexDir, storedir.TagsDir, storedir.IndexFileName(tag))
		name, all, _, err := indexer.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, tag, name)
		require.Len(t, all, 100)
		last := all[len(all)-1]
		for _, from := range []uint64{0, 1, 2, 3, 4, 5, 150, 151, 152, last - 1, last, last + 1, last + 1000, ^uint64(0)} {
			got, err := indexer.ReadFrom(path, from)
			if !assert.NoError(t, err, "ReadFrom(%d) on the index of a tag of %d bytes", from, len(tag)) {
				continue
			}
			var want []uint64
			for _, p := range all {
				if p >= from {
					want = append(want, p)
				}
			}
			assert.Equal(t, len(want), len(got), "ReadFrom(%d), tag of %d bytes", from, len(tag))
			if len(want) > 0 {
				assert.Equal(t, want, got, "ReadFrom(%d), tag of %d bytes", from, len(tag))
			}
		}
	}
}

// TestEventFileRoundTrip: an event file decodes back to the event the store
// holds, for data the store accepts and keeps verbatim.
func TestEventFileRoundTrip(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, c := range []struct {
		name string
		e    dcb.Event
	}{
		{"plain", dcb.Event{Type: "T", Tags: []string{"a", "b"}, Data: json.RawMessage(`{"x":1}`), Metadata: map[string]string{"k": "v"}}},
		{"no data, tags or metadata", dcb.Event{Type: "T"}},
		{"escapes", dcb.Event{Type: "<T&\"\\\u2028>", Tags: []string{"\t", "\u0001", "🦘"}, Metadata: map[string]string{"<": "&\n"}}},
		{"data is the JSON null", dcb.Event{Type: "T", Data: json.RawMessage(`null`)}},
		{"data with surrounding whitespace", dcb.Event{Type: "T", Data: json.RawMessage(" {\"x\": 1}\n")}},
		{"an id", dcb.Event{Type: "T", ID: "3f1c<&>\u2028"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, c.e.Validate())
			e := dcb.SequencedEvent{Event: c.e.Normalized(), Position: 42}
			e.Timestamp = ts
			b := storedir.AppendEventFile(nil, e)
			require.True(t, json.Valid(b), "%s", b)
			got, err := storedir.DecodeEvent(b)
			require.NoError(t, err)
			assert.Equal(t, e, got, "DecodeEvent(EncodeEvent(e)) for the event file %s", b)
		})
	}
}
