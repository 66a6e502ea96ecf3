package store_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gateFS holds the projector's first rename into events/ until Close has
// asked the projector to stop: the projector is then one batch into a
// backlog that Close must not wait for.
type gateFS struct {
	vfs.FS
	events   string
	stopping <-chan struct{} // set before the first append
	reached  chan struct{}
	once     sync.Once
}

func (g *gateFS) Rename(from, to string) error {
	if filepath.Dir(to) == g.events {
		g.once.Do(func() {
			close(g.reached)
			<-g.stopping
		})
	}
	return g.FS.Rename(from, to)
}

// backlogEvent is event i of a backlog store: two tags, one shared by many.
func backlogEvent(i int) dcb.Event {
	return dcb.Event{Type: fmt.Sprintf("T%d", i%3), Tags: []string{fmt.Sprintf("k:%d", i%7), fmt.Sprintf("n:%d", i)}, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}
}

// closeWithBacklog appends n events (appends of 100) to a new store in dir
// while the projector is held at its first event file, closes it, and
// returns the events and the checkpoint Close left.
func closeWithBacklog(t *testing.T, dir string, n int) ([]dcb.SequencedEvent, storedir.Checkpoint) {
	t.Helper()
	g := &gateFS{FS: vfs.OS, events: filepath.Join(dir, storedir.EventsDir), reached: make(chan struct{})}
	s, err := store.OpenFS(dir, &store.Options{NoSync: true}, g)
	require.NoError(t, err)
	g.stopping = store.ProjectorStopping(s)
	for i := 0; i < n; i += 100 {
		batch := make([]dcb.Event, 0, 100)
		for j := i; j < min(n, i+100); j++ {
			batch = append(batch, backlogEvent(j))
		}
		_, err := s.Append(t.Context(), batch, nil)
		require.NoError(t, err)
	}
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	<-g.reached
	require.NoError(t, s.Close())
	cp, err := storedir.ReadCheckpoint(dir)
	require.NoError(t, err)
	return evs, cp
}

// TestCloseDoesNotWaitForBacklog: Close finishes the projector's batch, not
// its backlog; the store it leaves is consistent, the next Open replays the
// rest into memory from the WAL (trusting the snapshot Close wrote) and
// projects it in the background.
func TestCloseDoesNotWaitForBacklog(t *testing.T) {
	t.Parallel()
	dir := testdir.Tmpfs(t)
	const n = 2000
	evs, cp := closeWithBacklog(t, dir, n)
	require.Len(t, evs, n)
	assert.Positive(t, cp.Position, "Close checkpoints the batch the projector was writing")
	assert.LessOrEqual(t, cp.Position, uint64(64), "Close waited for more than the 64 event files the projector writes between looks at the stop signal")
	_, err := os.Stat(storedir.EventPath(dir, cp.Position+1))
	assert.ErrorIs(t, err, os.ErrNotExist, "no event file after the checkpoint")

	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "a backlog is not damage: %+v", rep.Problems)
	assert.Equal(t, cp.Position, rep.Checkpoint)
	assert.Equal(t, n-cp.Position, rep.Pending)

	s := open(t, dir)
	or := s.OpenReport()
	assert.Equal(t, uint64(n)-cp.Position, or.Projection.Replayed, "Open replays the backlog into memory")
	assert.True(t, or.Projection.IndexFromSnapshot, "%+v", or.Projection)
	assert.False(t, or.Projection.EventsListed, "%+v", or.Projection)
	assert.Empty(t, or.Projection.IndexRebuilt)
	assert.Equal(t, evs, readAll(t, s, dcb.All(), store.ReadOptions{}), "every event reads back before its files exist")
	assert.Equal(t, positions(filterTag(evs, "k:3")), readPositions(t, s, tagQuery("k:3"), store.ReadOptions{}))
	closeProjected(t, s)
	projectiontest.RequireMatches(t, dir, evs)
	rep, err = recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Zero(t, rep.Pending)
}

// TestRepairProjectsBacklog: possum recover projects what Close left.
func TestRepairProjectsBacklog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	evs, cp := closeWithBacklog(t, dir, 3000)
	rep, err := recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, 3000-cp.Position, rep.Pending)
	assert.Contains(t, strings.Join(rep.Repairs, "\n"), fmt.Sprintf("project %d event files after the checkpoint", 3000-cp.Position))
	projectiontest.RequireMatches(t, dir, evs)
	rep, err = recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Zero(t, rep.Pending)
	assert.Equal(t, uint64(3000), rep.Checkpoint)
}

func filterTag(evs []dcb.SequencedEvent, tag string) []dcb.SequencedEvent {
	var out []dcb.SequencedEvent
	for _, e := range evs {
		for _, t := range e.Tags {
			if t == tag {
				out = append(out, e)
			}
		}
	}
	return out
}

const catchUpChildEnv = "POSSUM_TEST_CATCHUP_CHILD"

func init() { child.Register(catchUpChildEnv, runCatchUpChild) }

// runCatchUpChild opens the store in dir, which has a projection backlog,
// and prints "projected N" each time the background catch-up advances, until
// it is killed.
func runCatchUpChild(dir string) {
	s, err := store.Open(dir, nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	head := s.Head()
	for {
		p := s.Stats().Projected
		fmt.Printf("projected %d\n", p)
		if p >= head {
			select {} // wait to be killed
		}
		if err := s.WaitProjected(context.Background(), p+1); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
	}
}

// TestCrashDuringCatchUp: a kill -9 at any point of the background
// projection of a backlog loses nothing; the next Open takes the catch-up
// up again and the projection ends equal to the WAL. Iterations scale with
// POSSUM_CRASH_ITERATIONS (default 3).
func TestCrashDuringCatchUp(t *testing.T) {
	t.Parallel()
	iterations := testenv.Scaled(t, "POSSUM_CRASH_ITERATIONS", 3, 1)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for it := range iterations {
		dir := testdir.Tmpfs(t) // a kill, not a power cut: the page cache holds what the disk would
		evs, cp := closeWithBacklog(t, dir, 2000)
		head := uint64(len(evs))
		// Kill when the catch-up has reached target: at once, or later.
		target := cp.Position + rng.Uint64N(head-cp.Position+1)

		cmd := child.Command(catchUpChildEnv, dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		watchdog := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
		sc := bufio.NewScanner(out)
		killedAt := uint64(0)
		for sc.Scan() {
			var p uint64
			if _, err := fmt.Sscanf(sc.Text(), "projected %d", &p); err != nil {
				t.Fatalf("iteration %d: catch-up child said %q; stderr:\n%s", it, sc.Text(), stderr.String())
			}
			if p >= target {
				require.NoError(t, cmd.Process.Kill())
				killedAt = p
				break
			}
		}
		_ = cmd.Wait()
		watchdog.Stop()
		require.NotZero(t, killedAt+target, "iteration %d: the child never reached %d; stderr:\n%s", it, target, stderr.String())
		t.Logf("iteration %d: checkpoint %d, killed with %d of %d projected", it, cp.Position, killedAt, head)

		s := open(t, dir)
		require.Equal(t, head, s.Head(), "iteration %d", it)
		require.Equal(t, evs, readAll(t, s, dcb.All(), store.ReadOptions{}), "iteration %d", it)
		closeProjected(t, s)
		projectiontest.RequireMatches(t, dir, evs)
		rep, err := recovery.Verify(dir, nil)
		require.NoError(t, err)
		require.True(t, rep.Consistent(), "iteration %d: %+v", it, rep.Problems)
	}
}
