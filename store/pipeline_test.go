package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The group commit pipeline: the writer writes the next group to the WAL
// while the previous group's fsync runs, and a group is acknowledged only
// once an fsync covering it returned. These tests hold the fsync with the
// store's WAL fsync seam and see each group written through the writer's
// hook, so every step is ordered by channels, none by time.

// walSyncs is a WAL fsync seam that, once told to hold, holds each fsync
// until the test releases it.
type walSyncs struct {
	entered chan struct{}
	release chan error // nil: do the real fsync
	calls   atomic.Int64
	holding atomic.Bool
}

// openWithWALSyncs opens a store in dir whose WAL fsyncs go through the
// returned seam, which does the real fsync until its hold.
func openWithWALSyncs(t *testing.T, dir string) (*store.Store, *walSyncs) {
	t.Helper()
	w := &walSyncs{entered: make(chan struct{}), release: make(chan error)}
	s, err := store.OpenWALSync(dir, nil, func(f *os.File) error {
		if !w.holding.Load() {
			return f.Sync()
		}
		w.calls.Add(1)
		w.entered <- struct{}{}
		if err := <-w.release; err != nil {
			return err
		}
		return f.Sync()
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, w
}

// hold makes every later fsync wait for the test.
func (w *walSyncs) hold() { w.holding.Store(true) }

// groupsWritten returns where the last position of each group the writer
// writes arrives.
func groupsWritten(s *store.Store) <-chan uint64 {
	ch := make(chan uint64, 64)
	store.OnGroupWritten(s, func(last uint64) { ch <- last })
	return ch
}

type appendOutcome struct {
	last uint64
	err  error
}

// startAppend runs one Append in a goroutine and returns where its outcome
// arrives.
func startAppend(s *store.Store, cond *dcb.AppendCondition, events ...dcb.Event) <-chan appendOutcome {
	ch := make(chan appendOutcome, 1)
	go func() {
		last, err := s.Append(context.Background(), events, cond)
		ch <- appendOutcome{last, err}
	}()
	return ch
}

// requirePending fails when one of the appends has already returned.
func requirePending(t *testing.T, what string, chs ...<-chan appendOutcome) {
	t.Helper()
	for i, ch := range chs {
		select {
		case o := <-ch:
			t.Fatalf("%s: append %d returned before its fsync: %+v", what, i, o)
		default:
		}
	}
}

// requireVisible checks what readers see: Head, a Read of everything, and
// the projection, which must not reach beyond head.
func requireVisible(t *testing.T, s *store.Store, head uint64) {
	t.Helper()
	require.Equal(t, head, s.Head())
	require.Equal(t, seq(1, head), readPositions(t, s, dcb.All(), store.ReadOptions{}))
	st := s.Stats()
	require.Equal(t, head, st.Head)
	require.LessOrEqual(t, st.Projected, head, "the projector went beyond what is durable")
	for p := head + 1; p <= head+8; p++ {
		_, err := os.Stat(filepath.Join(s.Dir(), storedir.EventsDir, storedir.EventFileName(p)))
		require.ErrorIs(t, err, os.ErrNotExist, "event file of position %d, not durable", p)
	}
}

// TestPipelineWritesDuringFsync: while the fsync of one group is held, the
// next groups are taken up, their conditions checked against the groups
// before them, and written; none of them is acknowledged or visible (Head,
// Read, the projector) until an fsync covering it returns, and one fsync
// then covers all the groups written meanwhile.
func TestPipelineWritesDuringFsync(t *testing.T) {
	s, syncs := openWithWALSyncs(t, t.TempDir())
	appendOK(t, s, ev("Seed"))
	written := groupsWritten(s)
	syncs.hold()

	a := startAppend(s, nil, ev("A", "a"))
	require.Equal(t, uint64(2), <-written)
	<-syncs.entered // the fsync of A runs, and is held

	b := startAppend(s, nil, ev("B", "b"))
	require.Equal(t, uint64(3), <-written, "B is written while A's fsync runs")
	c := startAppend(s, &dcb.AppendCondition{FailIfEventsMatch: tagQuery("c"), After: 1}, ev("C", "c"), ev("C", "c"))
	require.Equal(t, uint64(5), <-written, "C is written while A's fsync runs")
	// A condition sees the groups written before it, durable or not; the
	// rejection is told once B, its cause, is acknowledged.
	d := startAppend(s, &dcb.AppendCondition{FailIfEventsMatch: tagQuery("b"), After: 1}, ev("D", "d"))
	e := startAppend(s, nil, ev("E", "e")) // written after D's rejection
	require.Equal(t, uint64(6), <-written)
	requirePending(t, "A held", a, b, c, d, e)
	requireVisible(t, s, 1)

	syncs.release <- nil
	got := <-a
	require.NoError(t, got.err)
	assert.Equal(t, uint64(2), got.last)
	<-syncs.entered // the fsync of B and C runs, and is held
	requirePending(t, "B and C held", b, c, d, e)
	requireVisible(t, s, 2)

	syncs.release <- nil
	got = <-b
	require.NoError(t, got.err)
	assert.Equal(t, uint64(3), got.last)
	got = <-c
	require.NoError(t, got.err)
	assert.Equal(t, uint64(5), got.last)
	require.ErrorIs(t, (<-d).err, dcb.ErrAppendConditionFailed)
	got = <-e
	require.NoError(t, got.err)
	assert.Equal(t, uint64(6), got.last)
	assert.Equal(t, int64(2), syncs.calls.Load(), "one fsync covered every group written during the first")
	assert.Equal(t, uint64(6), s.Head())
	require.NoError(t, s.WaitProjected(t.Context(), 6))

	s = reopen(t, s)
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.Equal(t, seq(1, 6), positions(evs))
	for i, typ := range []string{"Seed", "A", "B", "C", "C", "E"} {
		assert.Equal(t, typ, evs[i].Type)
	}
}

// TestPipelineFsyncFailureFailsLaterGroups: when the fsync of one group
// fails, the groups written after it, during that fsync, fail too, with
// ErrPoisoned; so does every later append, without another fsync. None of
// them was ever visible.
func TestPipelineFsyncFailureFailsLaterGroups(t *testing.T) {
	dir := t.TempDir()
	s, syncs := openWithWALSyncs(t, dir)
	appendOK(t, s, ev("Seed"))
	written := groupsWritten(s)
	syncs.hold()
	injected := errors.New("injected fsync failure")

	a := startAppend(s, nil, ev("A", "a"))
	require.Equal(t, uint64(2), <-written)
	<-syncs.entered
	b := startAppend(s, nil, ev("B", "b"), ev("B", "b"))
	require.Equal(t, uint64(4), <-written)
	requirePending(t, "A held", a, b)

	syncs.release <- injected
	for name, ch := range map[string]<-chan appendOutcome{"A": a, "B": b} {
		got := <-ch
		require.ErrorIs(t, got.err, store.ErrPoisoned, name)
		assert.ErrorIs(t, got.err, injected, "%s: the cause is kept", name)
	}
	for range 3 {
		_, err := s.Append(t.Context(), []dcb.Event{ev("E")}, nil)
		require.ErrorIs(t, err, store.ErrPoisoned)
	}
	assert.Equal(t, int64(1), syncs.calls.Load(), "a poisoned WAL never fsyncs again")
	requireVisible(t, s, 1)
	require.NoError(t, s.Close(), "the failure was reported when it happened")

	// The failed groups reached the file, only their fsync failed: after a
	// reopen each may be there, whole and in order, or not at all.
	s = open(t, dir)
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	types := []string{"Seed", "A", "B", "B"}
	require.Contains(t, []int{1, 2, 4}, len(evs), "whole groups only")
	for i, e := range evs {
		assert.Equal(t, uint64(i+1), e.Position)
		assert.Equal(t, types[i], e.Type)
	}
	appendOK(t, s, ev("After"))
}

// TestPipelineConditionOrder: conditions are checked in one strict order
// across pipelined groups. An append conditioned on "no X after the head it
// read" loses to an X written, not yet durable, in an earlier group, and is
// told so only once that X is acknowledged, so that a read right after the
// rejection sees the X that caused it. When that X's fsync fails instead,
// the loser gets the failure, not a conflict with an event that never was.
func TestPipelineConditionOrder(t *testing.T) {
	for _, fsyncFails := range []bool{false, true} {
		t.Run(fmt.Sprint("fsync-fails=", fsyncFails), func(t *testing.T) {
			s, syncs := openWithWALSyncs(t, t.TempDir())
			appendOK(t, s, ev("Seed"))
			written := groupsWritten(s)
			syncs.hold()
			noX := &dcb.AppendCondition{FailIfEventsMatch: typeQuery("X"), After: 1}

			first := startAppend(s, noX, ev("X", "first"))
			require.Equal(t, uint64(2), <-written)
			<-syncs.entered
			second := startAppend(s, noX, ev("X", "second"))
			// The writer takes up the second append, rejects it and
			// goes on: a third, unconditional, is written after it.
			third := startAppend(s, nil, ev("Y"))
			require.Equal(t, uint64(3), <-written)
			requirePending(t, "first held", first, second, third)
			if fsyncFails {
				syncs.release <- errors.New("disk on fire")
				require.Error(t, (<-first).err)
				err := (<-second).err
				require.Error(t, err)
				assert.NotErrorIs(t, err, dcb.ErrAppendConditionFailed, "the X it conflicted with was never acknowledged")
				return
			}
			syncs.release <- nil
			got := <-first
			require.NoError(t, got.err)
			assert.Equal(t, uint64(2), got.last)
			require.ErrorIs(t, (<-second).err, dcb.ErrAppendConditionFailed, "the second X sees the first")
			assert.Equal(t, []uint64{2}, readPositions(t, s, typeQuery("X"), store.ReadOptions{}), "a read after the rejection sees its cause")
			<-syncs.entered
			syncs.release <- nil
			require.NoError(t, (<-third).err)
		})
	}
}

// TestPipelineRacingConditions: many appenders race, round after round, each
// appending X on the condition that no X came after the head it read, while
// others append unrelated events; the fsync is slowed (each one yields to
// the racers) so that groups overlap. Exactly one racer wins each round.
func TestPipelineRacingConditions(t *testing.T) {
	const (
		racers = 16
		rounds = 10
	)
	s, err := store.OpenWALSync(t.TempDir(), nil, func(f *os.File) error {
		for range 8 {
			runtime.Gosched()
		}
		return f.Sync()
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	for round := range rounds {
		head := s.Head()
		cond := &dcb.AppendCondition{FailIfEventsMatch: typeQuery("X"), After: head}
		var wg sync.WaitGroup
		var wins atomic.Int64
		start := make(chan struct{})
		for r := range racers {
			wg.Go(func() {
				<-start
				// Unrelated appends keep groups forming around the racers.
				_, err := s.Append(context.Background(), []dcb.Event{ev("Noise", fmt.Sprintf("r:%d", r))}, nil)
				assert.NoError(t, err)
				_, err = s.Append(context.Background(), []dcb.Event{ev("X", fmt.Sprintf("r:%d", r))}, cond)
				if err == nil {
					wins.Add(1)
				} else {
					assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
				}
			})
		}
		close(start)
		wg.Wait()
		require.Equal(t, int64(1), wins.Load(), "round %d: exactly one winner", round)
	}
	xs := readAll(t, s, typeQuery("X"), store.ReadOptions{})
	require.Len(t, xs, rounds)
	requireGapFree(t, s)
}

// TestPipelineCloseCompletesWrittenGroups: Close, called while one group's
// fsync runs and another group waits for the next, lets both complete:
// both are acknowledged and survive the reopen; appends after Close fail
// with ErrClosed.
func TestPipelineCloseCompletesWrittenGroups(t *testing.T) {
	dir := t.TempDir()
	s, syncs := openWithWALSyncs(t, dir)
	appendOK(t, s, ev("Seed"))
	written := groupsWritten(s)
	syncs.hold()

	a := startAppend(s, nil, ev("A"))
	require.Equal(t, uint64(2), <-written)
	<-syncs.entered
	b := startAppend(s, nil, ev("B"))
	require.Equal(t, uint64(3), <-written)

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	syncs.release <- nil // A's fsync
	<-syncs.entered      // B's, during Close
	syncs.release <- nil
	for name, ch := range map[string]<-chan appendOutcome{"A": a, "B": b} {
		got := <-ch
		require.NoError(t, got.err, name)
	}
	require.NoError(t, <-closed)
	_, err := s.Append(t.Context(), []dcb.Event{ev("Late")}, nil)
	require.ErrorIs(t, err, store.ErrClosed)

	s = open(t, dir)
	assert.Equal(t, uint64(3), s.Head())
	assert.Equal(t, seq(1, 3), readPositions(t, s, dcb.All(), store.ReadOptions{}))
}
