package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// runCmd runs the command with args and returns its exit code and output.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// runJSON runs a command given --json and decodes its report.
func runJSON(t *testing.T, wantCode int, args ...string) (*recovery.Report, string) {
	t.Helper()
	code, out, errOut := runCmd(args...)
	require.Equal(t, wantCode, code, "possum %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errOut)
	var rep recovery.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "stdout: %s", out)
	return &rep, out
}

// buildStore makes a closed store in dir of about n events over several WAL
// segments, the last segment not empty.
func buildStore(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := store.Open(dir, &store.Options{SegmentSize: 4096})
	require.NoError(t, err)
	for i := 1; s.Head() < uint64(n) || len(segments(t, dir)[len(segments(t, dir))-1].offs) == 0; i++ {
		evs := make([]dcb.Event, 1+i%3)
		for j := range evs {
			evs[j] = dcb.Event{
				Type: fmt.Sprintf("T%d", i%2),
				Tags: []string{"all", fmt.Sprintf("batch:%d", i)},
				Data: json.RawMessage(fmt.Sprintf(`{"i":%d,"j":%d,"pad":%q}`, i, j, strings.Repeat("y", 40))),
			}
		}
		_, err := s.Append(context.Background(), evs, nil)
		require.NoError(t, err)
	}
	closeProjected(t, s)
}

type segment struct {
	path string
	size int64
	offs []int64 // where each entry starts
	ends []int64 // where each entry ends
}

// segments parses the WAL segments of the store in dir.
func segments(t *testing.T, dir string) []segment {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	var segs []segment
	for _, e := range ents {
		if len(e.Name()) != 20 || strings.Trim(e.Name(), "0123456789") != "" {
			continue
		}
		path := filepath.Join(dir, "wal", e.Name())
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		seg := segment{path: path, size: int64(len(b))}
		for off := 0; off < len(b); {
			n, un := binary.Uvarint(b[off:])
			require.Positive(t, un)
			_, err := wal.DecodeFrame(b[off+un : off+un+int(n)])
			require.NoError(t, err)
			seg.offs = append(seg.offs, int64(off))
			off += un + int(n)
			seg.ends = append(seg.ends, int64(off))
		}
		segs = append(segs, seg)
	}
	return segs
}

func headOf(t *testing.T, dir string) uint64 {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	return s.Head()
}

// tearTail leaves a torn tail on a WAL segment: the zero-filled space of an
// append that died mid-write, never acknowledged. (Cutting an acknowledged
// record off loses data: a different case.)
func tearTail(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(make([]byte, 300))
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestHealthyStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildStore(t, dir, 40)

	rep, _ := runJSON(t, 0, "verify", "--json", dir)
	assert.True(t, rep.Consistent())
	assert.Equal(t, dir, rep.Dir)
	assert.Equal(t, storedir.LockHeldShared, rep.Lock)
	assert.GreaterOrEqual(t, rep.Head, uint64(40))
	assert.Empty(t, rep.Problems)

	before := testdir.Hash(t, dir)
	rep, _ = runJSON(t, 0, "recover", "--json", "--dry-run", dir)
	assert.True(t, rep.Consistent())
	assert.Equal(t, before, testdir.Hash(t, dir))
	rep, _ = runJSON(t, 0, "recover", "--json", dir)
	assert.True(t, rep.Consistent())
	assert.Nil(t, rep.WALRepair)

	// The text report too.
	code, out, _ := runCmd("verify", dir)
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "consistent")
	assert.Contains(t, out, dir)
	assert.Contains(t, out, "lock: shared")
}

func TestRepairableStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildStore(t, dir, 40)
	segs := segments(t, dir)
	last := segs[len(segs)-1]
	// A torn tail and a lost event file.
	tearTail(t, last.path)
	require.NoError(t, os.Remove(filepath.Join(dir, "events", fmt.Sprintf("%020d.json", 5))))
	before := testdir.Hash(t, dir)

	rep, _ := runJSON(t, 1, "verify", "--json", dir)
	assert.False(t, rep.Consistent())
	assert.Equal(t, 1, rep.Counts[recovery.WALTornTail])
	assert.Equal(t, 1, rep.Counts[recovery.EventMissing])
	for _, p := range rep.Problems {
		assert.False(t, p.DataLoss, "%+v", p)
	}
	code, out, _ := runCmd("verify", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, recovery.WALTornTail)
	assert.Equal(t, before, testdir.Hash(t, dir), "verify changed the store")

	rep, _ = runJSON(t, 1, "recover", "--json", "--dry-run", dir)
	assert.False(t, rep.Consistent())
	assert.NotEmpty(t, rep.Repairs)
	assert.Equal(t, before, testdir.Hash(t, dir), "recover --dry-run changed the store")

	rep, _ = runJSON(t, 0, "recover", "--json", dir)
	assert.Equal(t, 1, rep.Counts[recovery.WALTornTail])
	assert.NotEmpty(t, rep.Repairs)
	require.NotNil(t, rep.WALRepair)
	assert.Zero(t, rep.WALRepair.LostEvents)
	require.Len(t, rep.Kept, 1)
	assert.FileExists(t, rep.Kept[0])

	rep, _ = runJSON(t, 0, "verify", "--json", dir)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	// The torn record is gone; everything before it is there.
	assert.Equal(t, rep.Head, headOf(t, dir))
}

// TestRefusedStore: one event's bytes flipped in the middle of the log,
// its event file gone too: verify flags data loss and names the one
// position a repair loses; recover refuses; recover --allow-data-loss
// loses exactly that event, keeps its position as a lost marker and every
// other event, says so, and the store goes on at the same head.
func TestRefusedStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildStore(t, dir, 100)
	head := headOf(t, dir)
	segs := walmap.Map(t, filepath.Join(dir, "wal"))
	require.GreaterOrEqual(t, len(segs), 3, "the damage must be in the middle of the log")
	var rec walmap.Record
	for _, r := range segs[0].Records {
		if len(r.Entries) > 1 {
			rec = r
		}
	}
	require.NotZero(t, rec.First, "a record of several events")
	pos := rec.First + 1
	e := rec.Entries[1]
	walmap.Flip(t, segs[0].Path, (e[0]+e[1])/2)
	require.NoError(t, os.Remove(filepath.Join(dir, "events", fmt.Sprintf("%020d.json", pos))))
	before := testdir.Hash(t, dir)

	rep, _ := runJSON(t, 1, "verify", "--json", dir)
	require.Equal(t, 1, rep.Counts[recovery.WALCorrupt], "%+v", rep.Problems)
	dataLoss := false
	for _, p := range rep.Problems {
		dataLoss = dataLoss || p.DataLoss
	}
	assert.True(t, dataLoss, "verify must flag data loss: %+v", rep.Problems)
	require.NotNil(t, rep.WALRepair)
	assert.Equal(t, []storedir.Range{{From: pos, To: pos}}, rep.WALRepair.Lost, "exactly the damaged event")
	assert.Equal(t, before, testdir.Hash(t, dir))
	code, out, _ := runCmd("verify", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "DATA LOSS")
	assert.Contains(t, out, fmt.Sprintf("LOST position %d (1 event of record %d)", pos, rec.Index))

	for _, args := range [][]string{{"recover", "--json", dir}, {"recover", "--json", "--dry-run", dir}} {
		rep, _ := runJSON(t, 1, args...)
		assert.Equal(t, 1, rep.Counts[recovery.WALCorrupt])
		require.NotNil(t, rep.WALRepair)
		assert.False(t, rep.WALRepair.Written)
		assert.Empty(t, rep.Kept)
		assert.Equal(t, before, testdir.Hash(t, dir), "%v changed the store", args)
	}
	code, out, errOut := runCmd("recover", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "DATA LOSS")
	assert.Contains(t, errOut, fmt.Sprintf("a repair loses 1 event: position %d ", pos))
	assert.Equal(t, before, testdir.Hash(t, dir))

	code, out, errOut = runCmd("recover", "--allow-data-loss", dir)
	require.Equal(t, 0, code, "%s%s", out, errOut)
	assert.Contains(t, out, fmt.Sprintf("LOST position %d (1 event of record %d)", pos, rec.Index))
	assert.Contains(t, out, "still verifying in it")
	assert.Contains(t, out, "kept aside: ")

	rep, _ = runJSON(t, 0, "verify", "--json", dir)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Equal(t, head, rep.Head, "positions are kept")
	assert.Equal(t, []storedir.Range{{From: pos, To: pos}}, rep.Markers)
	assert.Equal(t, head, headOf(t, dir))
}

// TestLostTailStore: a WAL whose last segment was emptied lost positions the
// checkpoint vouches for. verify flags data loss, recover refuses, and
// recover --allow-data-loss accepts it, keeps the positions as lost markers
// and prints them.
func TestLostTailStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildStore(t, dir, 100)
	head := headOf(t, dir)
	segs := segments(t, dir)
	require.NoError(t, os.Truncate(segs[len(segs)-1].path, 0))
	before := testdir.Hash(t, dir)

	rep, _ := runJSON(t, 1, "verify", "--json", dir)
	require.Equal(t, 1, rep.Counts[recovery.WALLost], "%+v", rep.Problems)
	from := rep.Head + 1
	require.Less(t, from, head)
	lost := fmt.Sprintf("%d..%d", from, head)
	code, out, _ := runCmd("verify", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "DATA LOSS")
	assert.Contains(t, out, lost)

	code, _, errOut := runCmd("recover", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, lost)
	assert.Contains(t, errOut, "--allow-data-loss")
	assert.Equal(t, before, testdir.Hash(t, dir))

	code, out, _ = runCmd("recover", "--allow-data-loss", dir)
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "LOST positions "+lost)
	assert.Equal(t, head, headOf(t, dir), "the lost positions keep their places")
}

// On a store a writer holds, verify and a dry run check beside it and
// change nothing; a repair is refused, naming the directory and what to do.
func TestLockedStoreCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildStore(t, dir, 5)
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	deadline := time.Now().Add(time.Minute)
	for s.Stats().Checkpointed < s.Head() { // then the writer changes nothing
		require.True(t, time.Now().Before(deadline), "no checkpoint at the head")
		time.Sleep(5 * time.Millisecond) // polling the checkpoint, written once a second
	}
	before := testdir.Hash(t, dir)
	for _, args := range [][]string{
		{"verify", dir},
		{"verify", "--json", dir},
		{"recover", "--dry-run", dir},
	} {
		code, out, errOut := runCmd(args...)
		assert.Equal(t, 0, code, "%v: %s", args, errOut)
		assert.Contains(t, out, "beside", "%v", args)
	}
	for _, args := range [][]string{
		{"recover", dir},
		{"recover", "--allow-data-loss", "--json", dir},
	} {
		code, out, errOut := runCmd(args...)
		assert.Equal(t, 2, code, "%v", args)
		assert.Contains(t, errOut, dir+" is open in another process", "%v: the message must name the directory", args)
		assert.Contains(t, errOut, "a repair needs the store closed", "%v", args)
		assert.Empty(t, out, "%v", args)
	}
	assert.Equal(t, before, testdir.Hash(t, dir))
}

func TestBadUsage(t *testing.T) {
	notStore := t.TempDir()
	for _, args := range [][]string{
		nil,
		{"verify"},
		{"recover"},
		{"verify", "--json"},
		{"verify", "a", "b"},
		{"recover", "--no-such-flag", notStore},
		{"no-such-command"},
	} {
		code, out, errOut := runCmd(args...)
		assert.Equal(t, 2, code, "%q", args)
		assert.Empty(t, out, "%q", args)
		assert.NotEmpty(t, errOut, "%q", args)
	}
	for _, cmd := range []string{"verify", "recover"} {
		code, _, errOut := runCmd(cmd, notStore)
		assert.Equal(t, 2, code)
		assert.Contains(t, errOut, "not a possum store")
		assert.Contains(t, errOut, notStore)
	}
	entries, err := os.ReadDir(notStore)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing may be created in a directory that is not a store")

	code, out, errOut := runCmd("help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "usage", "asked for, help goes to stdout")
	assert.Empty(t, errOut)
}

// closeProjected waits until the projection holds every event, then closes
// s: Close itself does not wait for the projection backlog.
func closeProjected(t testing.TB, s *store.Store) {
	t.Helper()
	require.NoError(t, s.WaitProjected(t.Context(), s.Head()))
	require.NoError(t, s.Close())
}
