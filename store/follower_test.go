package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// collect subscribes to f after `after` in a goroutine and returns a
// function that waits until it has n events and returns them.
func collect(t *testing.T, f store.Events, after uint64) func(n int) []dcb.SequencedEvent {
	t.Helper()
	return collectQuery(t, f, dcb.All(), after)
}

// collectQuery is collect for the events matching q.
func collectQuery(t *testing.T, f store.Events, q dcb.Query, after uint64) func(n int) []dcb.SequencedEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	ch := make(chan dcb.SequencedEvent, 1024)
	errc := make(chan error, 1)
	go func() {
		for e, err := range f.Subscribe(ctx, q, after) {
			if err != nil {
				errc <- err
				return
			}
			ch <- e
		}
	}()
	var got []dcb.SequencedEvent
	return func(n int) []dcb.SequencedEvent {
		t.Helper()
		for len(got) < n {
			select {
			case e := <-ch:
				got = append(got, e)
			case err := <-errc:
				t.Fatalf("subscription ended after %d events: %v", len(got), err)
			}
		}
		return got
	}
}

// TestFollowerFollowsWriter: a follower started before the store exists
// sees every event once, in order, as the writer appends, closes and opens
// the store again, and answers reads like the writer does.
func TestFollowerFollowsWriter(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer f.Close()
	head, err := f.HeadContext(t.Context())
	require.NoError(t, err)
	assert.Zero(t, head)
	wait := collect(t, f, 0)
	// A query that needs the index, which the follower builds as it goes.
	waitTagged := collectQuery(t, f, tagQuery("k:3"), 0)

	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	for i, size := 0, 1; i < 600; i, size = i+size, size%13+1 {
		batch := make([]dcb.Event, size)
		for j := range batch {
			batch[j] = backlogEvent(i + j)
		}
		_, err := s.Append(t.Context(), batch, nil)
		require.NoError(t, err)
	}
	want := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.Equal(t, want, wait(len(want)))
	tagged := readAll(t, s, tagQuery("k:3"), store.ReadOptions{})
	require.Equal(t, tagged, waitTagged(len(tagged)))
	fh, err := f.HeadContext(t.Context())
	require.NoError(t, err)
	assert.Equal(t, s.Head(), fh)
	for _, q := range []dcb.Query{tagQuery("k:3"), typeQuery("T1"), query(item([]string{"T2"}, "k:1"))} {
		for _, o := range []store.ReadOptions{{}, {Backwards: true, Limit: 3}, {From: 100, Limit: 7}} {
			assert.Equal(t, readAll(t, s, q, o), readAll(t, f, q, o), "%+v %+v", q, o)
		}
	}

	// The writer closes, the follower still reads; it opens again and
	// appends more.
	require.NoError(t, s.Close())
	assert.Equal(t, want, readAll(t, f, dcb.All(), store.ReadOptions{}))
	s = open(t, dir)
	appendOK(t, s, ev("After", "k:3"), ev("After"))
	want = readAll(t, s, dcb.All(), store.ReadOptions{})
	require.Equal(t, want, wait(len(want)))
	tagged = readAll(t, s, tagQuery("k:3"), store.ReadOptions{})
	require.Equal(t, tagged, waitTagged(len(tagged)))
	st := f.Stats()
	assert.Equal(t, s.Head(), st.Head)
	t.Logf("follower stats: %+v", st)

	require.NoError(t, f.Close())
	_, err = read(f, t.Context(), dcb.All(), store.ReadOptions{})
	require.ErrorIs(t, err, store.ErrClosed)
}

// TestFollowerAcrossWriterCrashes: a follower in this process while a
// writer in another appends events in batches of 1 to 20 and is killed
// with kill -9, then opened again, twice: it delivers every position
// exactly once, in order, equal to what the store holds in the end, and
// never an event the store then lacks (nothing beyond what the writer
// acknowledged). The events scale with POSSUM_FOLLOW_EVENTS (default 10000).
func TestFollowerAcrossWriterCrashes(t *testing.T) {
	t.Parallel()
	total := testenv.Scaled(t, "POSSUM_FOLLOW_EVENTS", 10_000, 2_000)
	dir := testdir.Tmpfs(t) // kills, not power cuts
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer f.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	got := make(chan dcb.SequencedEvent, 1<<16)
	subErr := make(chan error, 1)
	go func() {
		defer close(got)
		for e, err := range f.Subscribe(ctx, dcb.All(), 0) {
			if err != nil {
				subErr <- err
				return
			}
			got <- e
		}
	}()

	var acks []crashAck
	for run := range 3 {
		// About 10 events per acknowledged append.
		a, _, _ := crashChild(t, dir, run, uint64(run)+77, crashMode{noSync: true}, total/30)
		acks = append(acks, a...)
	}
	s := open(t, dir) // repairs what the last kill tore, and publishes the rest
	want := readAll(t, s, dcb.All(), store.ReadOptions{})
	requireCrashLog(t, want, acks)
	require.GreaterOrEqual(t, len(want), total*8/10)

	var delivered []dcb.SequencedEvent
	for len(delivered) < len(want) {
		select {
		case e := <-got:
			require.Equal(t, uint64(len(delivered)+1), e.Position, "every position once, in order")
			require.Equal(t, want[e.Position-1], e, "position %d", e.Position)
			delivered = append(delivered, e)
		case err := <-subErr:
			t.Fatalf("subscription ended after %d of %d events: %v", len(delivered), len(want), err)
		}
	}
	st := f.Stats()
	t.Logf("%d events, %d acknowledged appends; follower %+v", len(want), len(acks), st)
	assert.Equal(t, s.Head(), st.Head)
}

// TestFollowerThroughRecover: a repair that loses nothing the follower
// delivered leaves it following; one that changes positions it delivered
// into lost markers (possum recover --allow-data-loss) ends its reads and
// subscriptions with ErrCorrupt, and following the store again reads the
// markers where the events were.
func TestFollowerThroughRecover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.Open(dir, &store.Options{SegmentSize: 2048})
	require.NoError(t, err)
	for i := range 60 {
		appendOK(t, s, backlogEvent(i))
	}
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer f.Close()
	wait := collect(t, f, 0)
	require.Len(t, wait(60), 60)
	closeProjected(t, s)

	// A repair of the projection only: the follower goes on.
	require.NoError(t, os.Remove(filepath.Join(dir, "events", "00000000000000000007.json")))
	_, err = recovery.Repair(dir, nil)
	require.NoError(t, err)
	s = open(t, dir)
	appendOK(t, s, ev("AfterRepair"))
	require.Len(t, wait(61), 61)
	require.NoError(t, s.Close())

	// Positions it delivered are lost: markers now.
	segs := walSegmentPaths(t, dir)
	require.NoError(t, os.Remove(segs[len(segs)-1]))
	rep, err := recovery.Repair(dir, &recovery.Options{AllowDataLoss: true})
	require.NoError(t, err)
	require.NotZero(t, rep.WALRepair.LostEvents)
	s = open(t, dir)
	defer s.Close()
	require.Equal(t, uint64(61), s.Head(), "positions are kept")
	_, err = read(f, t.Context(), dcb.All(), store.ReadOptions{})
	require.ErrorIs(t, err, store.ErrCorrupt)
	assert.Equal(t, 1, strings.Count(err.Error(), "wal: "), "one prefix each: %v", err)
	assert.Equal(t, 1, strings.Count(err.Error(), "store: "), "one prefix each: %v", err)
	var subErr error
	for _, err := range f.Subscribe(t.Context(), dcb.All(), 61) {
		subErr = err
		break
	}
	require.ErrorIs(t, subErr, store.ErrCorrupt)

	g, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer g.Close()
	all := readAll(t, g, dcb.All(), store.ReadOptions{})
	assert.Equal(t, readAll(t, s, dcb.All(), store.ReadOptions{}), all)
	require.Len(t, all, 61)
	assert.True(t, all[60].Lost)
}
