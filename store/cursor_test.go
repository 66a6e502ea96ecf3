package store_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// consume handles the events after c's position through Subscribe until it
// has seen `until`, saving the cursor after each, and returns the positions
// it handled.
func consume(t *testing.T, s *store.Store, c *store.Cursor, until uint64) []uint64 {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var got []uint64
	for e, err := range s.Subscribe(ctx, dcb.All(), c.Position()) {
		require.NoError(t, err)
		got = append(got, e.Position)
		require.NoError(t, c.Save(e.Position))
		if e.Position == until {
			break
		}
	}
	return got
}

func TestCursorResumes(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	for i := range 100 {
		appendOK(t, s, ev("T", fmt.Sprint("n:", i)))
	}
	c, err := s.Cursor("read-model")
	require.NoError(t, err)
	assert.Zero(t, c.Position())
	assert.Equal(t, filepath.Join(s.Dir(), storedir.CursorsDir, "read-model"), c.Path())
	first := consume(t, s, c, 40)

	// A restarted consumer: a new Cursor of the same name.
	c, err = s.Cursor("read-model")
	require.NoError(t, err)
	assert.Equal(t, uint64(40), c.Position())
	second := consume(t, s, c, 100)
	assert.Equal(t, seq(1, 100), append(first, second...), "no gap, no repeat")

	// A cursor at a path of the consumer's own, for a store it cannot write.
	own := filepath.Join(t.TempDir(), "sub", "cursor")
	c, err = store.OpenCursor(own)
	require.NoError(t, err)
	require.NoError(t, c.Save(7))
	c, err = store.OpenCursor(own)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), c.Position())
}

func TestCursorNames(t *testing.T) {
	t.Parallel()
	s := open(t, t.TempDir())
	for _, bad := range []string{"", ".hidden", "..", "a/b", `a\b`, "a b", "é", strings.Repeat("x", 129)} {
		_, err := s.Cursor(bad)
		assert.ErrorContains(t, err, "cursor name", "%q", bad)
	}
	_, err := os.Stat(filepath.Join(s.Dir(), storedir.CursorsDir))
	assert.ErrorIs(t, err, os.ErrNotExist, "a refused name creates nothing")
	_, err = s.Cursor(strings.Repeat("x", 128))
	assert.NoError(t, err)
}

// A cursor file that is not whole is an error, never position 0 or a wrong
// position.
func TestCursorTornIsNotTrusted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c")
	c, err := store.OpenCursor(path)
	require.NoError(t, err)
	require.NoError(t, c.Save(123456))
	whole, err := os.ReadFile(path)
	require.NoError(t, err)
	for name, b := range map[string][]byte{
		"empty":            {},
		"zero-filled":      make([]byte, len(whole)),
		"cut short":        whole[:len(whole)/2],
		"no newline":       whole[:len(whole)-1],
		"digit changed":    bytes.Replace(whole, []byte("123456"), []byte("123457"), 1),
		"checksum changed": append(append([]byte{}, whole[:len(whole)-2]...), '0', '\n'),
		"other text":       []byte("123456\n"),
	} {
		require.NoError(t, os.WriteFile(path, b, 0o640))
		_, err := store.OpenCursor(path)
		assert.ErrorIs(t, err, store.ErrCorrupt, name)
	}
}

const cursorChildEnv = "POSSUM_TEST_CURSOR_CHILD"

func init() { child.Register(cursorChildEnv, runCursorChild) }

// runCursorChild is a consumer: it handles the events of the store in dir
// (opened by it alone) after its cursor by appending "<position>\n" to
// handled.log, then saves the cursor, and prints each position handled.
func runCursorChild(dir string) {
	s, err := store.Open(dir, nil)
	if err == nil {
		var c *store.Cursor
		if c, err = s.Cursor("child"); err == nil {
			var log *os.File
			if log, err = os.OpenFile(filepath.Join(dir, "handled.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640); err == nil {
				for e, rerr := range s.Subscribe(context.Background(), dcb.All(), c.Position()) {
					if err = rerr; err != nil {
						break
					}
					if _, err = fmt.Fprintf(log, "%d\n", e.Position); err != nil {
						break
					}
					if err = c.Save(e.Position); err != nil {
						break
					}
					fmt.Println(e.Position)
				}
			}
		}
	}
	fmt.Println("error", err)
	os.Exit(1)
}

// TestCursorAtLeastOnceAcrossKills: a consumer killed with kill -9 at any
// point resumes after its cursor: every event handled, in order, and an
// event handled twice only when the kill fell between handling it and saving
// the cursor (then it is the first event after the restart).
func TestCursorAtLeastOnceAcrossKills(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	const n = 300
	for i := 0; i < n; i += 10 {
		batch := make([]dcb.Event, 10)
		for j := range batch {
			batch[j] = ev("T")
		}
		_, err := s.Append(t.Context(), batch, nil)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())

	kills := 0
	for last := uint64(0); last < n; kills++ {
		require.Less(t, kills, 50, "the consumer does not progress")
		cmd := child.Command(cursorChildEnv, dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		watchdog := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
		// Kill after a varying number of events: 37 then 73, 109, ...
		target := min(n, last+37+uint64(kills)*36)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p, err := strconv.ParseUint(sc.Text(), 10, 64)
			if err != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("child said %q; stderr: %s", sc.Text(), stderr.String())
			}
			last = p
			if p >= target {
				break
			}
		}
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
		watchdog.Stop()
	}

	b, err := os.ReadFile(filepath.Join(dir, "handled.log"))
	require.NoError(t, err)
	var handled []uint64
	for _, line := range strings.Fields(string(b)) {
		p, err := strconv.ParseUint(line, 10, 64)
		require.NoError(t, err)
		handled = append(handled, p)
	}
	next, repeats := uint64(1), 0
	for _, p := range handled {
		switch {
		case p == next:
			next++
		case p == next-1:
			repeats++ // handled, killed before the cursor was saved
		default:
			t.Fatalf("position %d handled when %d was next: a gap or a jump back", p, next)
		}
	}
	assert.Equal(t, uint64(n+1), next, "every event handled")
	assert.LessOrEqual(t, repeats, kills, "at most one repeat per kill")
	t.Logf("%d kills, %d repeats", kills, repeats)
}

// Opening a cursor creates nothing, on a store that does not exist yet too
// (following never writes); the first Save creates its directory and file.
func TestCursorOpenCreatesNothing(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "store")
	c, err := store.NamedCursor(dir, "projector")
	require.NoError(t, err)
	assert.Zero(t, c.Position())
	own := filepath.Join(base, "elsewhere", "sub", "cursor")
	o, err := store.OpenCursor(own)
	require.NoError(t, err)
	assert.NoDirExists(t, dir, "a cursor opened on a store that does not exist yet")
	assert.NoDirExists(t, filepath.Join(base, "elsewhere"))

	require.NoError(t, c.Save(3))
	require.NoError(t, o.Save(4))
	c, err = store.NamedCursor(dir, "projector")
	require.NoError(t, err)
	assert.Equal(t, uint64(3), c.Position())
	o, err = store.OpenCursor(own)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), o.Position())
}

// Lock takes a cursor for one consumer: a second, in this process or
// another, is refused with ErrLocked until the first closes it; a cursor
// that cannot be saved where it is is refused by Lock, before any event is
// handled.
func TestCursorLock(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	a, err := store.NamedCursor(dir, "c")
	require.NoError(t, err)
	require.NoError(t, a.Lock())
	require.NoError(t, a.Lock(), "again: nothing to do")
	assert.FileExists(t, a.Path()+".lock")
	b, err := store.NamedCursor(dir, "c")
	require.NoError(t, err)
	err = b.Lock()
	require.ErrorIs(t, err, store.ErrLocked)
	assert.Contains(t, err.Error(), "store: cursor "+b.Path()+" is in use")
	other, err := store.NamedCursor(dir, "other")
	require.NoError(t, err)
	require.NoError(t, other.Lock(), "another cursor of the same store")
	require.NoError(t, a.Close())
	require.NoError(t, b.Lock(), "once the first is closed")
	require.NoError(t, b.Save(9))
	require.NoError(t, b.Close())
	require.NoError(t, other.Close())

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o640))
	for _, c := range []struct{ path, why string }{
		{filepath.Join(file, "cursor"), "not a directory"},
		{t.TempDir(), "directory"},
	} {
		cur, err := store.OpenCursor(c.path)
		if err == nil {
			err = cur.Lock()
		}
		require.Error(t, err, c.path)
		assert.Contains(t, err.Error(), c.why, c.path)
	}
}
