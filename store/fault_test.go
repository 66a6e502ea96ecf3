//go:build linux

// The file-size fault needs RLIMIT_FSIZE and SIGXFSZ: Linux only.

package store_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	faultChildEnv = "POSSUM_FAULT_CHILD"
	// faultBatch events per append in the child.
	faultBatch = 3
	// faultFileLimit is the child's RLIMIT_FSIZE: the WAL segment (default
	// size, 20 MiB) hits it after about 20 appends, mid-write; event files
	// (about 1 KiB), index files and the offsets file stay far below it.
	faultFileLimit = 64 << 10
)

// faultEvent is the event at position pos of the child's store: its content
// is a function of the position, so the parent can check it.
func faultEvent(pos uint64) dcb.Event {
	batch := (pos-1)/faultBatch + 1
	pad := strings.Repeat(string(rune('a'+pos%26)), 1000)
	return dcb.Event{
		Type:     fmt.Sprintf("Fault%d", pos%2),
		Tags:     []string{"fault", fmt.Sprintf("batch:%d", batch)},
		Data:     json.RawMessage(fmt.Sprintf(`{"pos":%d,"pad":%q}`, pos, pad)),
		Metadata: map[string]string{"pos": strconv.FormatUint(pos, 10)},
	}
}

func faultBatchEvents(batch int) []dcb.Event {
	evs := make([]dcb.Event, faultBatch)
	for i := range evs {
		evs[i] = faultEvent(uint64(batch-1)*faultBatch + uint64(i) + 1)
	}
	return evs
}

func init() { child.Register(faultChildEnv, runFaultChild) }

// runFaultChild is the child process of TestFaultFileSizeLimit
// (POSSUM_FAULT_CHILD=dir). It limits the size of
// the files it writes (ignoring SIGXFSZ, so that a write past the limit
// fails with EFBIG: the closest thing to ENOSPC a test can arrange), opens
// the store in dir and appends batches, printing "ACK <last position>" for
// each acknowledged one. When an append fails it prints "ERR <message>",
// tries the same batch three more times, printing "ERR2 <message>" for each
// (or "OK2 <position>" should one succeed), and exits without closing the
// store.
func runFaultChild(dir string) {
	die := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "fault child: "+format+"\n", args...)
		os.Exit(3)
	}
	signal.Ignore(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: faultFileLimit, Max: faultFileLimit}); err != nil {
		die("setrlimit: %v", err)
	}
	s, err := store.Open(dir, nil)
	if err != nil {
		die("open: %v", err)
	}
	ctx := context.Background()
	oneLine := func(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
	for batch := 1; batch <= 1000; batch++ {
		evs := faultBatchEvents(batch)
		last, err := s.Append(ctx, evs, nil)
		if err == nil {
			fmt.Printf("ACK %d\n", last)
			continue
		}
		// The error half says whether the error is store.ErrPoisoned.
		fmt.Printf("ERR %t %s\n", errors.Is(err, store.ErrPoisoned), oneLine(err))
		for range 3 {
			if last, err := s.Append(ctx, evs, nil); err != nil {
				fmt.Printf("ERR2 %t %s\n", errors.Is(err, store.ErrPoisoned), oneLine(err))
			} else {
				fmt.Printf("OK2 %d\n", last)
			}
		}
		os.Exit(0) // a crash, as far as the store can tell: no Close
	}
	die("1000 batches appended: the file size limit was never hit")
}

// TestFaultFileSizeLimit: a WAL write that fails halfway (the file system
// refusing to grow the segment) poisons the store, which refuses every later
// append; after a restart every acknowledged append is there, exactly, and
// no batch is there in part.
func TestFaultFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	cmd := child.Command(faultChildEnv, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "child failed\nstdout: %s\nstderr: %s", out, stderr.String())

	var acks []uint64
	var errs, errs2 []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "ACK":
			require.Empty(t, errs, "an append was acknowledged after a failure:\n%s", out)
			p, err := strconv.ParseUint(rest, 10, 64)
			require.NoError(t, err)
			acks = append(acks, p)
		case "ERR":
			errs = append(errs, rest)
		case "ERR2":
			errs2 = append(errs2, rest)
		case "OK2":
			t.Fatalf("an append succeeded on a poisoned store: %s\nstdout: %s", sc.Text(), out)
		}
	}
	require.Len(t, errs, 1, "stdout: %s\nstderr: %s", out, stderr.String())
	require.Len(t, errs2, 3, "stdout: %s", out)
	require.GreaterOrEqual(t, len(acks), 5, "the limit was hit too early to test much: %s", out)
	for i, p := range acks {
		require.Equal(t, uint64(i+1)*faultBatch, p, "acknowledged positions")
	}
	assert.Contains(t, errs[0], "file too large", "the cause (EFBIG) is reported")
	for _, e := range append(errs, errs2...) {
		assert.True(t, strings.HasPrefix(e, "true "), "errors.Is(err, store.ErrPoisoned): %s", e)
		assert.Contains(t, e, "poisoned")
	}
	lastAck := acks[len(acks)-1]

	// Restart without a limit.
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	t.Logf("acknowledged up to %d; head after reopen %d; torn tail cut: %+v", lastAck, s.Head(), s.OpenReport().TornTail)
	head := s.Head()
	require.GreaterOrEqual(t, head, lastAck, "an acknowledged append was lost")
	require.LessOrEqual(t, head, lastAck+faultBatch, "more than the failed append appeared")
	require.Zero(t, head%faultBatch, "part of a batch survived: head %d", head)

	ctx := context.Background()
	pos := uint64(0)
	var batchTime time.Time
	for e, err := range s.Read(ctx, dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		pos++
		require.Equal(t, pos, e.Position)
		require.Equal(t, faultEvent(pos).Normalized(), content(e.Event), "position %d", pos)
		if (pos-1)%faultBatch == 0 {
			batchTime = e.Timestamp
		} else {
			require.True(t, batchTime.Equal(e.Timestamp), "position %d: the events of one append share a timestamp", pos)
		}
	}
	require.Equal(t, head, pos)
	for b := 1; b <= int(lastAck/faultBatch)+3; b++ {
		q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{fmt.Sprintf("batch:%d", b)}}}}
		n := 0
		for _, err := range s.Read(ctx, q, store.ReadOptions{}) {
			require.NoError(t, err)
			n++
		}
		want := 0
		if uint64(b)*faultBatch <= head {
			want = faultBatch
		}
		require.Equal(t, want, n, "events of batch %d", b)
	}

	// The store takes appends again.
	last, err := s.Append(ctx, faultBatchEvents(int(head/faultBatch)+1), nil)
	require.NoError(t, err)
	require.Equal(t, head+faultBatch, last)
	closeProjected(t, s)
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "%+v", rep.Problems)
	require.Equal(t, last, rep.Head)
}

// faultWaitProjectorErr waits, without sleeping, until the projector reports
// an error; it fails the test after a few seconds. Every event appended must
// stay unprojected meanwhile.
func faultWaitProjectorErr(t *testing.T, s *store.Store) error {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := s.Stats().ProjectorErr; err != nil {
			return err
		}
		require.True(t, time.Now().Before(deadline), "the projector reported no error: %+v", s.Stats())
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := s.WaitProjected(ctx, s.Head())
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "the projection went on")
	}
}

func faultAppend(t *testing.T, s *store.Store, n int) uint64 {
	t.Helper()
	var last uint64
	for range n {
		pos := s.Head() + 1
		var err error
		last, err = s.Append(context.Background(), []dcb.Event{faultEvent(pos)}, nil)
		require.NoError(t, err)
	}
	return last
}

func faultRequireEvents(t *testing.T, s *store.Store, head uint64) {
	t.Helper()
	pos := uint64(0)
	for e, err := range s.Read(context.Background(), dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		pos++
		require.Equal(t, pos, e.Position)
		require.Equal(t, faultEvent(pos).Normalized(), content(e.Event), "position %d", pos)
	}
	require.Equal(t, head, pos)
}

// faultWaitHealthy waits until the projector has projected head and
// cleared its error.
func faultWaitHealthy(t *testing.T, s *store.Store, head uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.WaitProjected(ctx, head))
	// The error is cleared right after the batch that succeeded.
	require.Eventually(t, func() bool { return s.Stats().ProjectorErr == nil }, 5*time.Second, 2*time.Millisecond,
		"the projector error stayed: %v", s.Stats().ProjectorErr)
}

// TestFaultProjectorCannotWrite: when the projector cannot write event files
// (events/ is not a directory), appends still succeed and read back (the
// WAL is the truth), the error shows in Stats, and once events/ is back the
// projector catches up and the store is consistent.
func TestFaultProjectorCannotWrite(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	events := filepath.Join(dir, "events")
	require.NoError(t, os.RemoveAll(events))
	require.NoError(t, os.WriteFile(events, []byte("not a directory\n"), 0o640))

	head := faultAppend(t, s, 5)
	perr := faultWaitProjectorErr(t, s)
	t.Logf("projector error: %v", perr)
	st := s.Stats()
	assert.Equal(t, head, st.Head)
	assert.Less(t, st.Projected, head)
	assert.Positive(t, st.Lag)
	faultRequireEvents(t, s, head) // reads do not need the projection

	require.NoError(t, os.Remove(events))
	require.NoError(t, os.Mkdir(events, 0o750))
	head = faultAppend(t, s, 1)
	faultWaitHealthy(t, s, head)
	assert.Zero(t, s.Stats().Lag)
	faultRequireEvents(t, s, head)
	require.NoError(t, s.Close())

	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "%+v", rep.Problems)
	require.Equal(t, head, rep.Head)
}

// TestFaultProjectorFailsMidBatch: the projector fails in the middle of a
// batch (one event file cannot be written: a directory is in its way), after
// the event files before it were written. Once the obstacle is gone, the
// projection must be exactly what the WAL implies: the retry must not list
// the positions projected before the failure twice in the index files.
func TestFaultProjectorFailsMidBatch(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	blocker := filepath.Join(dir, "events", fmt.Sprintf("%020d.json", 3))
	require.NoError(t, os.Mkdir(blocker, 0o750))

	evs := make([]dcb.Event, 5)
	for i := range evs {
		evs[i] = faultEvent(uint64(i) + 1)
	}
	_, err = s.Append(context.Background(), evs, nil)
	require.NoError(t, err)
	perr := faultWaitProjectorErr(t, s)
	t.Logf("projector error: %v", perr)
	assert.Less(t, s.Stats().Projected, uint64(3))

	require.NoError(t, os.Remove(blocker))
	head := faultAppend(t, s, 1)
	faultWaitHealthy(t, s, head)
	faultRequireEvents(t, s, head)
	require.NoError(t, s.Close())

	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "the projection differs from the WAL after a failed batch was retried: %+v", rep.Problems)

	// And a store reopened on it needs no repair of its index files.
	s, err = store.Open(dir, nil)
	require.NoError(t, err)
	assert.Empty(t, s.OpenReport().Projection.IndexRebuilt)
	assert.Empty(t, s.OpenReport().Projection.IndexDamaged)
	require.NoError(t, s.Close())
}
