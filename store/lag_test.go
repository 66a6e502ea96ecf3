package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// heldFS holds every rename into events/ until release is closed.
type heldFS struct {
	vfs.FS
	events  string
	release chan struct{}
}

func (h *heldFS) Rename(from, to string) error {
	if filepath.Dir(to) == h.events {
		<-h.release
	}
	return h.FS.Rename(from, to)
}

// TestProjectionLagBound: with the projector held, appends go on until the
// lag reaches Options.MaxProjectionLag; the next one waits (its context can
// give up, writing nothing), and passes once the projector moves.
func TestProjectionLagBound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := &heldFS{FS: vfs.OS, events: filepath.Join(dir, storedir.EventsDir), release: make(chan struct{})}
	s, err := store.OpenFS(dir, &store.Options{MaxProjectionLag: 10}, h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	for i := range 10 {
		_, err := s.Append(t.Context(), []dcb.Event{{Type: "T", Tags: []string{fmt.Sprint("n:", i)}}}, nil)
		require.NoError(t, err, "append %d is within the bound", i+1)
	}
	st := s.Stats()
	assert.Equal(t, uint64(10), st.MaxLag)
	assert.Equal(t, uint64(10), st.Lag)
	assert.Zero(t, st.LagWaits)

	// The projector cannot move: an append beyond the bound waits until
	// its context ends, and writes nothing.
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = s.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, uint64(10), s.Head(), "a waiting append wrote nothing")
	assert.Equal(t, uint64(1), s.Stats().LagWaits)

	// A batch larger than the bound waits for the whole backlog, then
	// passes; so does the single append racing it.
	done := make(chan error, 2)
	go func() {
		_, err := s.Append(t.Context(), make15(), nil)
		done <- err
	}()
	go func() {
		_, err := s.Append(t.Context(), []dcb.Event{{Type: "T"}}, nil)
		done <- err
	}()
	// Both wait: the projector is held. Once both are counted, let it go.
	for s.Stats().LagWaits < 3 {
		runtime.Gosched()
	}
	close(h.release)
	require.NoError(t, <-done)
	require.NoError(t, <-done)
	assert.Equal(t, uint64(26), s.Head())
	assert.Equal(t, uint64(3), s.Stats().LagWaits)
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.NoError(t, s.Close())
	projectiontest.RequireMatches(t, dir, evs)
}

// appendConcurrently has writers goroutines append each events apiece, one
// an append, and returns the largest lag one of them saw after its append.
func appendConcurrently(t *testing.T, s *store.Store, writers, each int) uint64 {
	t.Helper()
	var mu sync.Mutex
	var maxLag uint64 // under mu
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := s.Append(t.Context(), []dcb.Event{ev("Load", fmt.Sprintf("w:%d", w), fmt.Sprintf("i:%d", i))}, nil)
				if !assert.NoError(t, err) {
					return
				}
				lag := s.Stats().Lag
				mu.Lock()
				maxLag = max(maxLag, lag)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return maxLag
}

func make15() []dcb.Event {
	evs := make([]dcb.Event, 15)
	for i := range evs {
		evs[i] = dcb.Event{Type: "Big", Tags: []string{"big"}}
	}
	return evs
}

// TestProjectionLagBoundUnderLoad: 64 writers appending as fast as NoSync
// lets them, far faster than the projector writes files: the lag never
// exceeds the bound by more than one append per writer.
func TestProjectionLagBoundUnderLoad(t *testing.T) {
	t.Parallel()
	const bound, writers, each = 200, 64, 30
	dir := testdir.Tmpfs(t)
	s, err := store.Open(dir, &store.Options{NoSync: true, MaxProjectionLag: bound})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	maxLag := appendConcurrently(t, s, writers, each)
	st := s.Stats()
	t.Logf("max lag seen %d (bound %d), %d appends waited %v in all", maxLag, bound, st.LagWaits, st.LagWaitTime)
	assert.LessOrEqual(t, maxLag, uint64(bound+writers))
	assert.Equal(t, uint64(writers*each), s.Head())
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.NoError(t, s.Close())
	projectiontest.RequireMatches(t, dir, evs)
}

// TestLagBoundIgnoresRewritesBelowCheckpoint: event files Open found missing
// below the checkpoint are rewritten in the background; they hold back
// Projected (and WaitProjected) but are not lag: appends do not wait for them.
func TestLagBoundIgnoresRewritesBelowCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, dir)
	for i := range 20 {
		appendOK(t, s, ev("T", fmt.Sprint("n:", i)))
	}
	closeProjected(t, s)
	for _, pos := range []uint64{3, 9} {
		require.NoError(t, os.Remove(storedir.EventPath(dir, pos)))
	}

	h := &heldFS{FS: vfs.OS, events: filepath.Join(dir, storedir.EventsDir), release: make(chan struct{})}
	s, err := store.OpenFS(dir, &store.Options{MaxProjectionLag: 5}, h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	st := s.Stats()
	assert.Equal(t, uint64(2), st.Projected, "event file 3 is still to be rewritten")
	assert.Zero(t, st.Lag)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for range 4 {
		_, err := s.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
		require.NoError(t, err)
	}
	assert.Zero(t, s.Stats().LagWaits, "appends waited for rewrites below the checkpoint")
	close(h.release)
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	require.NoError(t, s.Close())
	projectiontest.RequireMatches(t, dir, evs)
}

// fakeClock is a clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// gatedFS makes the projector slow as a slow disk would, in the time its
// clock measures: every event file it renames into events/ takes a token
// from gate first, and costs perEvent on clock.
type gatedFS struct {
	vfs.FS
	events   string
	gate     chan struct{}
	clock    *fakeClock
	perEvent time.Duration
}

func (g *gatedFS) Rename(from, to string) error {
	if filepath.Dir(to) == g.events {
		<-g.gate
		g.clock.advance(g.perEvent)
	}
	return g.FS.Rename(from, to)
}

// TestProjectionDelayBound: a projector that writes 1,000 events a second
// (each event file costs it 1ms, as a slow disk's would) and a bound of
// 50ms: appends wait once the backlog would take it longer than that, 50
// events, though the bound in events is a million; the lag stays within
// what the bound allows at the measured rate, under concurrent appends too.
func TestProjectionDelayBound(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := &fakeClock{}
	g := &gatedFS{FS: vfs.OS, events: filepath.Join(dir, storedir.EventsDir), gate: make(chan struct{}, 1<<16), clock: clock, perEvent: time.Millisecond}
	const delay = 50 * time.Millisecond
	s, err := store.OpenFS(dir, &store.Options{NoSync: true, MaxProjectionDelay: delay}, g)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	store.SetProjectorClock(s, clock.now)
	st := s.Stats()
	assert.Equal(t, delay, st.MaxDelay)
	assert.Equal(t, uint64(store.DefaultMaxProjectionLag), st.MaxLag)
	assert.Zero(t, st.ProjectionRate, "not measured yet")
	assert.Equal(t, st.MaxLag, st.LagBound, "until it is, the bound in events")
	tokens := func(n int) {
		for range n {
			g.gate <- struct{}{}
		}
	}

	// The projector measures its rate as it works.
	tokens(200)
	for i := range 200 {
		appendOK(t, s, ev("T", fmt.Sprint("n:", i%7)))
	}
	require.NoError(t, s.WaitProjected(t.Context(), 200))
	st = s.Stats()
	require.InDelta(t, 1000, st.ProjectionRate, 1e-6, "events a second of its work")
	bound := st.LagBound
	require.Equal(t, uint64(50), bound, "1,000 events/s × 50ms")
	waits := st.LagWaits

	// Held, it lets the lag grow to the bound; the next append waits
	// (writing nothing) until it moves.
	for i := range bound {
		appendOK(t, s, ev("T", fmt.Sprint("held:", i)))
	}
	st = s.Stats()
	assert.Equal(t, bound, st.Lag)
	assert.Equal(t, waits, st.LagWaits, "within the bound, no append waited")
	head := s.Head()
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(t.Context(), []dcb.Event{ev("T", "over")}, nil)
		done <- err
	}()
	for s.Stats().LagWaits == waits {
		runtime.Gosched()
	}
	assert.Equal(t, head, s.Head(), "a waiting append wrote nothing")
	tokens(int(bound)) // the backlog, which the projector writes as one batch
	require.NoError(t, <-done)
	assert.LessOrEqual(t, s.Stats().Lag, bound)

	// Concurrent writers against the slow projector: the lag stays within
	// the bound but for one append per writer racing through together.
	const writers, each = 8, 40
	feeding := make(chan struct{})
	go func() {
		for {
			select {
			case g.gate <- struct{}{}:
			case <-feeding:
				return
			}
		}
	}()
	maxLag := appendConcurrently(t, s, writers, each)
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	close(feeding) // no event file is left for the projector to write
	st = s.Stats()
	assert.InDelta(t, 1000, st.ProjectionRate, 1e-6)
	assert.Equal(t, bound, st.LagBound)
	assert.LessOrEqual(t, maxLag, bound+uint64(writers))
	assert.Greater(t, st.LagWaits, waits+1, "appends waited for the slow projector")
	t.Logf("max lag %d, bound %d events (%v at %.0f events/s), %d appends waited", maxLag, bound, delay, st.ProjectionRate, st.LagWaits)
}

// The defaults: a minute, and no bound at all with NoProjectionLagBound.
func TestProjectionDelayDefaults(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	assert.Equal(t, store.DefaultMaxProjectionDelay, s.Stats().MaxDelay)
	assert.Equal(t, time.Minute, store.DefaultMaxProjectionDelay)
	s, err := store.Open(t.TempDir(), &store.Options{MaxProjectionLag: store.NoProjectionLagBound})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	appendOK(t, s, ev("T"))
	require.NoError(t, s.WaitProjected(t.Context(), 1))
	st := s.Stats()
	assert.Equal(t, store.NoProjectionDelayBound, st.MaxDelay)
	assert.Equal(t, store.NoProjectionLagBound, st.LagBound)
}
