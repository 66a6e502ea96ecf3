package store_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	crashChildEnv       = "POSSUM_CRASH_CHILD"
	crashChildSeedEnv   = "POSSUM_CRASH_CHILD_SEED"
	crashChildNoSyncEnv = "POSSUM_CRASH_CHILD_NOSYNC"
	crashChildPaceEnv   = "POSSUM_CRASH_CHILD_PACE" // a duration between two appends of a goroutine
	crashChildMaxTime   = 2 * time.Minute
)

var crashTags = []string{"k:0", "k:1", "k:2", "k:3", "🦘", "a/b"}

// envIntOr returns the integer in the environment variable name, or def.
func envIntOr(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "%s", name)
	return n
}

// TestCrashChild is not a test: it is the process TestCrashRecovery kills.
// With POSSUM_CRASH_CHILD=dir it opens the store in dir and appends random
// batches from two goroutines until it is killed, writing the last position
// of every acknowledged append to stdout, one line per append. With
// POSSUM_CRASH_CHILD_PACE each goroutine pauses that long between appends,
// so that the child lives long enough to write checkpoints without
// appending more than the parent wants to check.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		return
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	seed, err := strconv.ParseUint(os.Getenv(crashChildSeedEnv), 10, 64)
	if err != nil {
		fail(err)
	}
	var pace time.Duration
	if v := os.Getenv(crashChildPaceEnv); v != "" {
		if pace, err = time.ParseDuration(v); err != nil {
			fail(err)
		}
	}
	s, err := store.Open(dir, &store.Options{NoSync: os.Getenv(crashChildNoSyncEnv) != ""})
	if err != nil {
		fail(err)
	}
	// Never outlive a parent that went away: a write to its closed pipe
	// kills this process, and so does this timer.
	time.AfterFunc(crashChildMaxTime, func() { fail(errors.New("not killed in time")) })
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for {
				batch := make([]dcb.Event, 1+rng.IntN(20))
				for i := range batch {
					e := dcb.Event{Type: []string{"Even", "Odd", "Other"}[rng.IntN(3)]}
					for range rng.IntN(3) {
						e.Tags = append(e.Tags, crashTags[rng.IntN(len(crashTags))])
					}
					if rng.IntN(2) == 0 {
						e.Data = fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)
					}
					batch[i] = e
				}
				var cond *dcb.AppendCondition
				if rng.IntN(3) == 0 {
					tag := crashTags[rng.IntN(len(crashTags))]
					cond = &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}, After: s.Head()}
				}
				last, err := s.Append(context.Background(), batch, cond)
				if errors.Is(err, dcb.ErrAppendConditionFailed) {
					continue
				}
				if err != nil {
					fail(err)
				}
				mu.Lock()
				_, err = os.Stdout.WriteString(strconv.FormatUint(last, 10) + "\n")
				mu.Unlock()
				if err != nil {
					fail(err)
				}
				time.Sleep(pace) // pacing the load, not synchronization
			}
		}()
	}
	wg.Wait()
}

// TestCrashRecovery kills a process appending to a store (SIGKILL, in the
// middle of appends and projection) after a random number of acknowledged
// appends, then reopens the store: every acknowledged event must be there,
// positions gap-free, and once closed the projection must equal the WAL.
// Iterations (POSSUM_CRASH_ITERATIONS, default 3) reuse the directory; they
// take turns: durable appends, NoSync appends, and paced durable appends
// killed only once the child has written a checkpoint of its own (so that
// Open starts from a checkpoint written under load, not at a clean Close).
func TestCrashRecovery(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the crash child")
	}
	t.Parallel()
	iterations := envIntOr(t, "POSSUM_CRASH_ITERATIONS", 3)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	var prevHead uint64
	for it := range iterations {
		target := 50 + rng.IntN(251)
		mode := crashMode{noSync: it%3 == 1}
		if it%3 == 2 {
			mode.pace, mode.untilCheckpoint = 15*time.Millisecond, prevHead+1
		}
		acked, maxAck := crashChild(t, dir, rng.Uint64(), mode, target)
		t.Logf("iteration %d: killed after %d acknowledged appends (wanted %d, %+v), last acknowledged position %d", it, acked, target, mode, maxAck)

		s, err := store.Open(dir, nil)
		require.NoError(t, err, "iteration %d: reopen after the crash", it)
		rep := s.OpenReport()
		t.Logf("iteration %d: open report: WAL %+v, torn tail %+v, projection %+v", it, rep.WAL, rep.TornTail, rep.Projection)
		if mode.untilCheckpoint > 0 {
			require.GreaterOrEqual(t, rep.Projection.Checkpoint, mode.untilCheckpoint, "iteration %d: the child's checkpoint", it)
		}
		head := s.Head()
		require.GreaterOrEqual(t, head, maxAck, "iteration %d: an acknowledged append was lost", it)
		require.GreaterOrEqual(t, head, prevHead, "iteration %d: events of an earlier iteration were lost", it)

		var evs []dcb.SequencedEvent
		for e, err := range s.Read(t.Context(), dcb.All(), store.ReadOptions{}) {
			require.NoError(t, err, "iteration %d: read", it)
			require.Equal(t, uint64(len(evs)+1), e.Position, "iteration %d: positions gap-free", it)
			require.Contains(t, []string{"Even", "Odd", "Other"}, e.Type)
			evs = append(evs, e)
		}
		require.Len(t, evs, int(head), "iteration %d: Read returns every event", it)
		// The in-memory index, loaded from the projection's index files
		// and the WAL, must agree with the events.
		for _, tag := range crashTags {
			var want, got []uint64
			for _, e := range evs {
				if slices.Contains(e.Tags, tag) {
					want = append(want, e.Position)
				}
			}
			for e, err := range s.Read(t.Context(), dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}, store.ReadOptions{}) {
				require.NoError(t, err)
				got = append(got, e.Position)
			}
			require.Equal(t, want, got, "iteration %d: read by tag %q", it, tag)
		}
		require.NoError(t, s.Close(), "iteration %d: close", it)
		requireProjectionMatches(t, dir, evs)
		cp, err := projector.ReadCheckpoint(dir)
		require.NoError(t, err)
		assert.Equal(t, head, cp.Position, "iteration %d: checkpoint after Close", it)
		prevHead = head
	}
}

type crashMode struct {
	noSync bool
	pace   time.Duration
	// untilCheckpoint: when not 0, the child is killed only once the
	// checkpoint is at or beyond this position.
	untilCheckpoint uint64
}

// crashChild runs TestCrashChild on dir until it has acknowledged target
// appends (and, if asked, written a checkpoint), kills it, and returns how
// many appends it acknowledged in all (lines still in the pipe count too)
// and the highest position among them.
func crashChild(t *testing.T, dir string, seed uint64, mode crashMode, target int) (int, uint64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildSeedEnv+"="+strconv.FormatUint(seed, 10))
	if mode.noSync {
		cmd.Env = append(cmd.Env, crashChildNoSyncEnv+"=1")
	}
	if mode.pace > 0 {
		cmd.Env = append(cmd.Env, crashChildPaceEnv+"="+mode.pace.String())
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	watchdog := time.AfterFunc(crashChildMaxTime, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()

	acked, maxAck, killed := 0, uint64(0), false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		pos, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Logf("crash child printed %q", sc.Text())
			continue
		}
		acked++
		maxAck = max(maxAck, pos)
		if acked >= target && !killed && mode.untilCheckpoint > 0 {
			// The checkpoint file is replaced atomically: it is read whole
			// or not at all.
			cp, err := projector.ReadCheckpoint(dir)
			require.NoError(t, err)
			if cp.Position < mode.untilCheckpoint {
				continue
			}
		}
		if acked >= target && !killed {
			require.NoError(t, cmd.Process.Kill())
			killed = true
		}
	}
	werr := cmd.Wait()
	require.True(t, killed, "the crash child stopped after %d acknowledged appends: %v\nstderr:\n%s", acked, werr, stderr.String())
	var exit *exec.ExitError
	require.ErrorAs(t, werr, &exit, "stderr:\n%s", stderr.String())
	require.False(t, exit.Exited(), "the crash child exited on its own (%v) instead of being killed:\n%s", werr, stderr.String())
	return acked, maxAck
}
