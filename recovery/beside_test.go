package recovery_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/internal/testkit/walmap"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appendOn appends fixture batches to s until the test's cleanup, and
// returns a function that waits until s has acknowledged more than pos.
func appendOn(t *testing.T, s *store.Store) func(pos uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 1; ctx.Err() == nil; n++ {
			if _, err := s.Append(ctx, fixtureBatch(n, s.Head()+1, false), nil); err != nil && ctx.Err() == nil {
				t.Errorf("append: %v", err)
				return
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return func(pos uint64) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for s.Head() <= pos {
			require.True(t, time.Now().Before(deadline), "no append acknowledged after %d", pos)
			time.Sleep(time.Millisecond) // polling a position, not waiting for a moment
		}
	}
}

// TestVerifyBesideWriter: Verify and a dry run of Repair work on a store a
// writer holds while it appends: consistent, saying they ran beside it and
// up to which position, never past what it had acknowledged; Repair itself
// is refused. Damage planted in the acknowledged part is still found.
func TestVerifyBesideWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildFixture(t, dir, 60)
	l := layout{dir: dir, segs: walSegments(t, dir)}
	require.GreaterOrEqual(t, len(l.segs), 2)
	s, err := store.Open(dir, &store.Options{SegmentSize: segSize})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	appended := appendOn(t, s)

	for round := range 3 {
		before := s.Head()
		appended(before)
		rep, err := recovery.Verify(dir, nil)
		require.NoError(t, err)
		assert.True(t, rep.Consistent(), "round %d: %+v", round, rep.Problems)
		assert.True(t, rep.BesideWriter)
		assert.Equal(t, recovery.LockBesideWriter, rep.Lock)
		assert.GreaterOrEqual(t, rep.Head, before+1, "checks what was acknowledged when it began")
		assert.LessOrEqual(t, rep.Head, s.Head(), "never past what the writer acknowledged")

		rep, err = recovery.Repair(dir, &recovery.Options{DryRun: true})
		require.NoError(t, err)
		assert.True(t, rep.Consistent(), "dry run, round %d: %+v", round, rep.Problems)
		assert.True(t, rep.BesideWriter)
		assert.Empty(t, rep.Repairs, "projecting is the writer's, not a repair")
	}
	for _, opts := range []recovery.Options{{}, {AllowDataLoss: true}} {
		_, err = recovery.Repair(dir, &opts)
		require.ErrorIs(t, err, store.ErrLocked, "a repair needs the writer gone")
		assert.Contains(t, err.Error(), dir)
	}

	// Damage where the writer no longer writes: an event file, and a WAL
	// record in the middle of the log.
	flipBit(t, eventPath(dir, 2), 20)
	damaged := l.segs[0].recs[1] // the writer appends to a later segment
	walmap.Flip(t, l.segs[0].path, damaged.end-3)
	appended(s.Head())
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.BesideWriter)
	assert.Equal(t, 1, rep.Counts[recovery.EventDiffers], "%+v", rep.Problems)
	assert.Equal(t, 1, rep.Counts[recovery.WALCorrupt], "%+v", rep.Problems)
	assert.Equal(t, damaged.first-1, rep.Head)
	require.NotNil(t, rep.WALRepair)
	assert.Equal(t, uint64(1), rep.WALRepair.Repaired, "the event file repairs the damaged event")
	rep, err = recovery.Repair(dir, &recovery.Options{DryRun: true})
	require.NoError(t, err, "nothing would be lost")
	assert.True(t, rep.BesideWriter)
	assert.Equal(t, 1, rep.Counts[recovery.WALCorrupt], "%+v", rep.Problems)

	// Without its event file, the damaged event would be lost.
	require.NoError(t, os.Remove(eventPath(dir, damaged.last)))
	rep, err = recovery.Repair(dir, &recovery.Options{DryRun: true})
	require.ErrorIs(t, err, recovery.ErrDataLoss)
	assert.Contains(t, err.Error(), fmt.Sprintf("position %d ", damaged.last))
	assert.True(t, rep.BesideWriter)
	assert.Equal(t, 1, rep.Counts[recovery.WALCorrupt], "%+v", rep.Problems)
}

// TestVerifyBesideWriterStopsAtAcknowledged: beside a writer, a record it
// wrote and has not yet acknowledged (not synced: no offsets entry vouches
// for it), and a half-written one after it, are the writer's, not damage;
// the same bytes in a store nobody holds are a torn tail.
func TestVerifyBesideWriterStopsAtAcknowledged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildFixture(t, dir, 20)
	head := layoutHead(t, dir)
	writer, err := storedir.Lock(dir, true) // as a writer holds it
	require.NoError(t, err)
	w, _, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{SegmentSize: segSize})
	require.NoError(t, err)
	require.NoError(t, w.Write([]wal.Record{{FirstPosition: head + 1, Stamp: time.Now().UTC(), Events: fixtureBatch(1, head+1, false)}}))
	segs := walSegments(t, dir)
	last := segs[len(segs)-1]
	rec := last.recs[len(last.recs)-1]
	require.Equal(t, head+1, rec.first, "the unsynced record is in the segment")
	b, err := os.ReadFile(last.path)
	require.NoError(t, err)
	appendToFile(t, last.path, b[rec.off:rec.off+(rec.end-rec.off)/2])
	before := testdir.Hash(t, dir)

	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.BesideWriter)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Equal(t, head, rep.Head, "up to what was acknowledged")
	rep, err = recovery.Repair(dir, &recovery.Options{DryRun: true})
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Empty(t, rep.Repairs)
	assert.Equal(t, before, testdir.Hash(t, dir), "a check beside a writer changes nothing")

	// The writer gone, the half-written record is a torn tail.
	require.NoError(t, w.Close())
	require.NoError(t, writer.Close())
	rep, err = recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.False(t, rep.BesideWriter)
	assert.Equal(t, storedir.LockHeldShared, rep.Lock)
	assert.Equal(t, 1, rep.Counts[recovery.WALTornTail], "%+v", rep.Problems)
}

// layoutHead returns the last position in the WAL of the closed store in
// dir.
func layoutHead(t *testing.T, dir string) uint64 {
	t.Helper()
	segs := walSegments(t, dir)
	last := segs[len(segs)-1]
	return last.recs[len(last.recs)-1].last
}

// TestVerifyBesideIdleWriterChangesNothing: beside a writer that has
// projected and checkpointed everything, Verify and a dry run change no
// file, and report the store consistent with nothing pending.
func TestVerifyBesideIdleWriterChangesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, &store.Options{SegmentSize: segSize})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	for n := 1; n <= 30; n++ {
		_, err := s.Append(t.Context(), fixtureBatch(n, s.Head()+1, n%7 == 0), nil)
		require.NoError(t, err)
	}
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	deadline := time.Now().Add(time.Minute)
	for s.Stats().Checkpointed < s.Head() {
		require.True(t, time.Now().Before(deadline), "no checkpoint at the head")
		time.Sleep(5 * time.Millisecond) // polling the checkpoint, written once a second
	}
	before := testdir.Hash(t, dir)
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.BesideWriter)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Equal(t, s.Head(), rep.Head)
	assert.Equal(t, s.Head(), rep.Checkpoint)
	assert.Zero(t, rep.Pending)
	_, err = recovery.Repair(dir, &recovery.Options{DryRun: true})
	require.NoError(t, err)
	assert.Equal(t, before, testdir.Hash(t, dir))
	var evs []dcb.SequencedEvent
	for e, err := range s.Read(t.Context(), dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		evs = append(evs, e)
	}
	assert.Len(t, evs, int(s.Head()))
}
