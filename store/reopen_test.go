package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReopenWithoutRereading: a cleanly closed store reopens from its
// checkpoint and the WAL offsets file without reading WAL records, replaying
// events or listing events/; a lagging checkpoint makes Open scan and replay
// exactly what it does not cover.
func TestReopenWithoutRereading(t *testing.T) {
	t.Parallel()
	n := testenv.Scaled(t, "POSSUM_REOPEN_EVENTS", 5_000, 2_000)
	const perAppend = 1000
	dir := testdir.Tmpfs(t)
	tagOf := func(pos uint64) string { return fmt.Sprintf("r:%d", pos%10) }

	reopenStore := func(opts *store.Options) *store.Store {
		t.Helper()
		s, err := store.Open(dir, opts)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	// appendN appends count events at once, tagged by position (and extra).
	appendN := func(s *store.Store, count int, extra ...string) {
		t.Helper()
		first := s.Head() + 1
		batch := make([]dcb.Event, count)
		for i := range batch {
			batch[i] = dcb.Event{Type: "Reopened", Tags: append([]string{tagOf(first + uint64(i))}, extra...)}
		}
		last, err := s.Append(t.Context(), batch, nil)
		require.NoError(t, err)
		require.Equal(t, first+uint64(count)-1, last)
	}
	// requireTagRead checks a read by tag against the tagging rule.
	requireTagRead := func(s *store.Store, tag string) {
		t.Helper()
		var want, got []uint64
		for pos := uint64(1); pos <= s.Head(); pos++ {
			if tagOf(pos) == tag {
				want = append(want, pos)
			}
		}
		for e, err := range s.Read(t.Context(), dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}, store.ReadOptions{}) {
			require.NoError(t, err)
			require.Equal(t, "Reopened", e.Type)
			got = append(got, e.Position)
		}
		require.Equal(t, want, got, "read by tag %q", tag)
	}
	requireNothingReread := func(s *store.Store, records int) {
		t.Helper()
		rep := s.OpenReport()
		assert.Zero(t, rep.WAL.ScannedRecords, "WAL records scanned: %+v", rep.WAL)
		assert.Zero(t, rep.WAL.ScannedBytes, "WAL bytes scanned: %+v", rep.WAL)
		assert.Equal(t, records, rep.WAL.TrustedRecords, "WAL records located by the offsets file")
		assert.Nil(t, rep.TornTail)
		assert.Zero(t, rep.Projection.Replayed, "events replayed: %+v", rep.Projection)
		assert.False(t, rep.Projection.EventsListed, "events/ listed: %+v", rep.Projection)
		assert.True(t, rep.Projection.IndexFromSnapshot, "index read from the snapshot, not every index file: %+v", rep.Projection)
		assert.Empty(t, rep.Projection.CheckpointProblem)
		assert.Empty(t, rep.Projection.IndexRebuilt)
		assert.Zero(t, rep.Projection.IndexTrimmedBytes)
	}

	// Build the store: n events, appends of perAppend.
	s := reopenStore(&store.Options{NoSync: true})
	records := 0
	for s.Head() < uint64(n) {
		appendN(s, min(perAppend, n-int(s.Head())))
		records++
	}
	closeProjected(t, s)

	s = reopenStore(nil)
	requireNothingReread(s, records)
	require.Equal(t, uint64(n), s.Head())
	requireTagRead(s, "r:3")

	// Appends after a clean reopen, projected, then a normal Close: the
	// next Open still rereads nothing.
	for range 10 {
		appendN(s, 7, "late")
		records++
	}
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	require.Zero(t, s.Stats().Lag)
	closeProjected(t, s)
	s = reopenStore(nil)
	requireNothingReread(s, records)
	requireTagRead(s, "r:7")

	// A lagging checkpoint: keep the current one (it covers everything so
	// far), append more (with a tag no event had before), close, and put the
	// old checkpoint back. Open must scan exactly the records after it and
	// replay exactly their events.
	cpPath := filepath.Join(dir, storedir.CheckpointFile)
	oldCP, err := os.ReadFile(cpPath)
	require.NoError(t, err)
	cp, err := storedir.ReadCheckpoint(dir)
	require.NoError(t, err)
	require.Equal(t, s.Head(), cp.Position)
	trusted := records
	for i := range 10 {
		appendN(s, 3+i, "later")
		records++
	}
	head := s.Head()
	closeProjected(t, s)
	require.NoError(t, os.WriteFile(cpPath, oldCP, 0o640))

	s = reopenStore(nil)
	rep := s.OpenReport()
	t.Logf("open report after restoring a lagging checkpoint: WAL %+v, projection %+v", rep.WAL, rep.Projection)
	assert.Equal(t, trusted, rep.WAL.TrustedRecords, "records located by the offsets file")
	assert.Equal(t, records-trusted, rep.WAL.ScannedRecords, "records scanned: exactly those after the checkpoint")
	assert.Positive(t, rep.WAL.ScannedBytes)
	assert.Equal(t, cp.Position, rep.Projection.Checkpoint)
	assert.Equal(t, head-cp.Position, rep.Projection.Replayed, "events replayed: exactly those after the checkpoint")
	assert.Empty(t, rep.Projection.CheckpointProblem)
	assert.Empty(t, rep.Projection.IndexRebuilt, "index files trimmed to the checkpoint need no rebuild")
	assert.Positive(t, rep.Projection.IndexTrimmedBytes, "index entries beyond the checkpoint are trimmed")
	assert.Zero(t, rep.Projection.MissingEventFiles)
	assert.Zero(t, rep.Projection.StrayEventFiles)
	require.Equal(t, head, s.Head())
	requireTagRead(s, "r:1")

	var evs []dcb.SequencedEvent
	for e, err := range s.Read(t.Context(), dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		evs = append(evs, e)
	}
	require.Len(t, evs, int(head))
	closeProjected(t, s)
	projectiontest.RequireMatches(t, dir, evs)

	s = reopenStore(nil)
	requireNothingReread(s, records)
	closeProjected(t, s)
}

// TestReopenRepairsIndexFilesChangedAfterCleanClose: Open trusts the index
// snapshot of a clean Close without looking at the index files; files
// deleted, truncated or extended after that Close are still found (by the
// projector, before it appends to them or checkpoints) and rewritten, so
// that reads, later appends and the files all end equal to the WAL.
func TestReopenRepairsIndexFilesChangedAfterCleanClose(t *testing.T) {
	t.Parallel()
	dir := testdir.Tmpfs(t)
	tags := []string{"a", "b", "c", "d", "e"}
	appendAll := func(s *store.Store, n int) {
		t.Helper()
		for i := range n {
			e := dcb.Event{Type: fmt.Sprintf("T%d", i%3), Tags: []string{tags[i%len(tags)], tags[(i+1)%len(tags)]}}
			_, err := s.Append(t.Context(), []dcb.Event{e}, nil)
			require.NoError(t, err)
		}
	}
	s, err := store.Open(dir, &store.Options{NoSync: true})
	require.NoError(t, err)
	appendAll(s, 100)
	want := readAll(t, s, dcb.All(), store.ReadOptions{})
	closeProjected(t, s)

	tagFile := func(tag string) string {
		return filepath.Join(dir, storedir.IndexDir, "tags", storedir.IndexFileName(tag))
	}
	typeFile := filepath.Join(dir, storedir.IndexDir, "types", storedir.IndexFileName("T1"))
	require.NoError(t, os.Remove(tagFile("a")))
	require.NoError(t, os.Truncate(tagFile("b"), 16+8*3))
	f, err := os.OpenFile(tagFile("c"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{0xff, 0, 0, 0, 0, 0, 0, 0, 0xfe})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Truncate(typeFile, 0))

	s, err = store.Open(dir, nil)
	require.NoError(t, err)
	rep := s.OpenReport().Projection
	require.True(t, rep.IndexFromSnapshot, "Open trusts the snapshot: %+v", rep)
	for _, tag := range tags {
		q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}
		var wantTag []dcb.SequencedEvent
		for _, e := range want {
			if q.Matches(e.Event) {
				wantTag = append(wantTag, e)
			}
		}
		assert.Equal(t, wantTag, readAll(t, s, q, store.ReadOptions{}), "read by tag %q", tag)
	}
	// Appends after the reopen go to the repaired files.
	appendAll(s, 50)
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	want = readAll(t, s, dcb.All(), store.ReadOptions{})
	require.Len(t, want, 150)
	closeProjected(t, s)
	projectiontest.RequireMatches(t, dir, want)

	// Index files changed after Close, and a crash before the next
	// checkpoint (no snapshot): Open reads every file, and the counts fall
	// short of the checkpoint's, so it rebuilds.
	require.NoError(t, os.Remove(tagFile("d")))
	require.NoError(t, os.Remove(filepath.Join(dir, storedir.IndexDir, storedir.SnapshotFile)))
	s, err = store.Open(dir, nil)
	require.NoError(t, err)
	assert.NotEmpty(t, s.OpenReport().Projection.IndexRebuilt)
	assert.Equal(t, want, readAll(t, s, dcb.All(), store.ReadOptions{}))
	closeProjected(t, s)
	projectiontest.RequireMatches(t, dir, want)

	s, err = store.Open(dir, nil)
	require.NoError(t, err)
	rep = s.OpenReport().Projection
	assert.True(t, rep.IndexFromSnapshot, "%+v", rep)
	assert.Empty(t, rep.IndexRebuilt)
	closeProjected(t, s)
	projectiontest.RequireMatches(t, dir, want)
}
