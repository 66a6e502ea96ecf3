package store_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	crashChildEnv       = "POSSUM_CRASH_CHILD"
	crashChildSeedEnv   = "POSSUM_CRASH_CHILD_SEED"
	crashChildNoSyncEnv = "POSSUM_CRASH_CHILD_NOSYNC"
	crashChildPaceEnv   = "POSSUM_CRASH_CHILD_PACE" // a duration between two appends of a goroutine
	crashChildRunEnv    = "POSSUM_CRASH_CHILD_RUN"  // which run on the directory this is
	crashChildMaxTime   = 2 * time.Minute
)

var crashTags = []string{"k:0", "k:1", "k:2", "k:3", "🦘", "a/b"}

// runCrashChild is the process TestCrashRecovery and TestPowerLoss kill,
// started from TestMain when POSSUM_CRASH_CHILD=dir. It opens the store in
// dir and appends random batches from two goroutines until it is killed,
// writing one line per acknowledged append to stdout: its last position,
// goroutine, sequence number and size. Every event's content is crashEvent's,
// so the parent can check each one exactly. With POSSUM_CRASH_CHILD_PACE
// each goroutine pauses that long between appends, so that the child lives
// long enough to write checkpoints without appending more than the parent
// wants to check. With POSSUM_POWERLOSS_CHILD the projector's file system
// calls are recorded on stdout too (see recordingFS), in one order with the
// acknowledgements.
func runCrashChild(dir string) {
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
	var mu sync.Mutex // one line at a time on stdout, acknowledgements and file system calls alike
	var fs vfs.FS = vfs.OS
	if mode := os.Getenv(powerLossChildEnv); mode != "" {
		fs = newRecordingFS(dir, vfs.OS, &mu, os.Stdout, mode == powerLossBroken)
	}
	s, err := store.OpenFS(dir, &store.Options{NoSync: os.Getenv(crashChildNoSyncEnv) != ""}, fs)
	if err != nil {
		fail(err)
	}
	// Never outlive a parent that went away: a write to its closed pipe
	// kills this process, and so does this timer.
	time.AfterFunc(crashChildMaxTime, func() { fail(errors.New("not killed in time")) })
	var wg sync.WaitGroup
	// Goroutine numbers are unique across the runs on one directory, so
	// batch names (goroutine, sequence) never repeat.
	run, _ := strconv.Atoi(os.Getenv(crashChildRunEnv))
	for gi := range 2 {
		g := run*2 + gi
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for seq := 0; ; seq++ {
				batch := make([]dcb.Event, 1+rng.IntN(20))
				for i := range batch {
					batch[i] = crashEvent(g, seq, i, len(batch))
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
				_, err = fmt.Fprintf(os.Stdout, "%d %d %d %d\n", last, g, seq, len(batch))
				mu.Unlock()
				if err != nil {
					fail(err)
				}
				time.Sleep(pace) // pacing the load, not synchronization
			}
		}()
	}
	wg.Wait()
	fail(errors.New("every appender stopped"))
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
	t.Parallel()
	iterations := testenv.Scaled(t, "POSSUM_CRASH_ITERATIONS", 3, 1)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := testdir.Tmpfs(t) // a kill, not a power cut: the page cache holds what the disk would
	var prevHead uint64
	var allAcks []crashAck
	for it := range iterations {
		target := 50 + rng.IntN(251)
		mode := crashMode{noSync: it%3 == 1}
		if it%3 == 2 {
			mode.pace, mode.untilCheckpoint = 15*time.Millisecond, prevHead+1
		}
		acks, maxAck, _ := crashChild(t, dir, it, rng.Uint64(), mode, target)
		t.Logf("iteration %d: killed after %d acknowledged appends (wanted %d, %+v), last acknowledged position %d", it, len(acks), target, mode, maxAck)

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
		allAcks = append(allAcks, acks...)
		requireCrashLog(t, evs, allAcks)
		requireTagReads(t, s, evs, it)
		requireRetries(t, s, allAcks, it)
		require.NoError(t, s.WaitProjected(t.Context(), head), "iteration %d: wait for the projection", it)
		require.NoError(t, s.Close(), "iteration %d: close", it)
		projectiontest.RequireMatches(t, dir, evs)
		cp, err := storedir.ReadCheckpoint(dir)
		require.NoError(t, err)
		assert.Equal(t, head, cp.Position, "iteration %d: checkpoint after Close", it)
		vrep, err := recovery.Verify(dir, nil)
		require.NoError(t, err)
		require.True(t, vrep.Consistent(), "iteration %d: possum verify: %+v", it, vrep.Problems)
		prevHead = head
	}
}

// crashEvent is event i of n in batch seq of goroutine g: its content is a
// function of those alone, and its data says which it is.
// requireTagReads checks that the store's in-memory index, loaded from the
// projection's index files and the WAL, agrees with evs for every tag.
func requireTagReads(t require.TestingT, s *store.Store, evs []dcb.SequencedEvent, it int) {
	for _, tag := range crashTags {
		var want, got []uint64
		for _, e := range evs {
			if slices.Contains(e.Tags, tag) {
				want = append(want, e.Position)
			}
		}
		for e, err := range s.Read(context.Background(), dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}, store.ReadOptions{}) {
			require.NoError(t, err)
			got = append(got, e.Position)
		}
		require.Equal(t, want, got, "iteration %d: read by tag %q", it, tag)
	}
}

func crashEvent(g, seq, i, n int) dcb.Event {
	h := uint64(g)*1_000_003 + uint64(seq)*7919 + uint64(i)*104_729
	e := dcb.Event{
		Type:     []string{"Even", "Odd", "Other"}[h%3],
		Tags:     []string{fmt.Sprintf("batch:%d-%d", g, seq)},
		Data:     fmt.Appendf(nil, `{"g":%d,"s":%d,"i":%d,"n":%d}`, g, seq, i, n),
		Metadata: map[string]string{"g": strconv.Itoa(g)},
	}
	if seq%2 == 0 {
		e.ID = crashID(g, seq, i) // a batch retried after the crash
	}
	if seq%3 == 0 {
		e.Timestamp = time.Unix(1_000_000_000+int64(g)*100_000+int64(seq), int64(i)*7).UTC() // the caller's
	}
	for k, tag := range crashTags {
		if h>>(k+2)&1 == 1 {
			e.Tags = append(e.Tags, tag)
		}
	}
	return e
}

func crashID(g, seq, i int) string { return fmt.Sprintf("crash-%d-%d-%d", g, seq, i) }

// requireRetries appends again every acknowledged batch whose events carry
// IDs: each is a retry, answered with its positions, and nothing is
// written.
func requireRetries(t testing.TB, s *store.Store, acks []crashAck, it int) {
	t.Helper()
	head := s.Head()
	retried := 0
	for _, a := range acks {
		if a.seq%2 != 0 {
			continue
		}
		batch := make([]dcb.Event, a.n)
		for i := range batch {
			batch[i] = crashEvent(int(a.g), int(a.seq), i, int(a.n))
		}
		last, err := s.Append(t.Context(), batch, &dcb.AppendCondition{FailIfEventsMatch: dcb.All(), After: 0})
		require.NoError(t, err, "iteration %d: retry of batch %d-%d", it, a.g, a.seq)
		require.Equal(t, a.last, last, "iteration %d: retry of batch %d-%d", it, a.g, a.seq)
		retried++
	}
	require.Equal(t, head, s.Head(), "iteration %d: %d retries wrote nothing", it, retried)
}

// crashAck is one acknowledged append of the crash child.
type crashAck struct{ last, g, seq, n uint64 }

// requireCrashLog checks the events after a crash: each is exactly the
// crashEvent its data names; every batch is whole, at consecutive positions
// (no append is half present); every acknowledged batch is there, where the
// child was told it is.
func requireCrashLog(t testing.TB, evs []dcb.SequencedEvent, acks []crashAck) {
	t.Helper()
	type batchKey struct{ g, seq uint64 }
	type batchSeen struct{ first, count, n uint64 }
	seen := map[batchKey]*batchSeen{}
	for _, e := range evs {
		var d struct{ G, S, I, N uint64 }
		require.NoError(t, json.Unmarshal(e.Data, &d), "position %d", e.Position)
		want := crashEvent(int(d.G), int(d.S), int(d.I), int(d.N))
		got := e.Event
		if want.Timestamp.IsZero() {
			got = content(got) // the store's
		}
		require.Equal(t, want, got, "position %d: content", e.Position)
		b := seen[batchKey{d.G, d.S}]
		if b == nil {
			b = &batchSeen{first: e.Position - d.I, n: d.N}
			seen[batchKey{d.G, d.S}] = b
		}
		require.Equal(t, b.first+d.I, e.Position, "position %d: batch %d-%d not contiguous", e.Position, d.G, d.S)
		b.count++
	}
	for k, b := range seen {
		require.Equal(t, b.n, b.count, "batch %d-%d is half present", k.g, k.seq)
	}
	for _, a := range acks {
		b := seen[batchKey{a.g, a.seq}]
		require.NotNil(t, b, "acknowledged batch %d-%d (last position %d) is missing", a.g, a.seq, a.last)
		require.Equal(t, a.last, b.first+b.n-1, "acknowledged batch %d-%d moved", a.g, a.seq)
		require.Equal(t, a.n, b.n)
	}
}

type crashMode struct {
	noSync bool
	pace   time.Duration
	// untilCheckpoint: when not 0, the child is killed only once the
	// checkpoint is at or beyond this position.
	untilCheckpoint uint64
	// powerLoss: when not "", the child records its projector's file system
	// calls on stdout (POSSUM_POWERLOSS_CHILD takes this value).
	powerLoss string
}

// crashChild runs runCrashChild on dir until it has acknowledged target
// appends (and, if asked, written a checkpoint), kills it, and returns the
// appends it acknowledged (lines still in the pipe count too), the
// highest position among them, and every line it printed.
func crashChild(t *testing.T, dir string, run int, seed uint64, mode crashMode, target int) ([]crashAck, uint64, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildSeedEnv+"="+strconv.FormatUint(seed, 10), crashChildRunEnv+"="+strconv.Itoa(run))
	if mode.noSync {
		cmd.Env = append(cmd.Env, crashChildNoSyncEnv+"=1")
	}
	if mode.pace > 0 {
		cmd.Env = append(cmd.Env, crashChildPaceEnv+"="+mode.pace.String())
	}
	if mode.powerLoss != "" {
		cmd.Env = append(cmd.Env, powerLossChildEnv+"="+mode.powerLoss)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	watchdog := time.AfterFunc(crashChildMaxTime, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()

	var acks []crashAck
	var lines []string
	acked, maxAck, killed := 0, uint64(0), false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // a file system line carries the bytes written
	for sc.Scan() {
		if mode.powerLoss != "" {
			lines = append(lines, sc.Text())
			if strings.HasPrefix(sc.Text(), "fs ") {
				continue
			}
		}
		var a crashAck
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %d %d", &a.last, &a.g, &a.seq, &a.n); err != nil {
			t.Logf("crash child printed %q", sc.Text())
			continue
		}
		acks = append(acks, a)
		acked++
		maxAck = max(maxAck, a.last)
		if acked >= target && !killed && mode.untilCheckpoint > 0 {
			// The checkpoint file is replaced atomically: it is read whole
			// or not at all.
			cp, err := storedir.ReadCheckpoint(dir)
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
	require.NoError(t, sc.Err(), "reading the crash child's stdout")
	werr := cmd.Wait()
	require.True(t, killed, "the crash child stopped after %d acknowledged appends: %v\nstderr:\n%s", acked, werr, stderr.String())
	var exit *exec.ExitError
	require.ErrorAs(t, werr, &exit, "stderr:\n%s", stderr.String())
	require.False(t, exit.Exited(), "the crash child exited on its own (%v) instead of being killed:\n%s", werr, stderr.String())
	return acks, maxAck, lines
}
