package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tailEvent(i int) dcb.Event {
	e := dcb.Event{Type: fmt.Sprintf("T%d", i%3), Tags: []string{fmt.Sprintf("k:%d", i%4), "all"},
		Data: []byte(fmt.Sprintf(`{"i":%d}`, i)), Metadata: map[string]string{"m": "v"}, ID: fmt.Sprintf("id-%d", i)}
	if i%5 == 0 {
		e.Timestamp = time.Date(2019, 3, 1, 8, 0, i, 123456789, time.UTC) // the caller's
	}
	return e
}

// decodeLines parses NDJSON output as event files and checks each line is
// byte for byte the event file of its event.
func decodeLines(t *testing.T, out string) []dcb.SequencedEvent {
	t.Helper()
	var evs []dcb.SequencedEvent
	for line := range strings.Lines(out) {
		e, err := storedir.DecodeEvent([]byte(line))
		require.NoError(t, err, "line %q", line)
		require.Equal(t, string(storedir.AppendEventFile(nil, e)), line)
		evs = append(evs, e)
	}
	return evs
}

// TestTail prints a store a writer holds open, filtered, and resumes with a
// cursor.
func TestTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	for i := range 50 {
		_, err := s.Append(t.Context(), []dcb.Event{tailEvent(i)}, nil)
		require.NoError(t, err)
	}
	read := func(q dcb.Query, o store.ReadOptions) []dcb.SequencedEvent {
		var out []dcb.SequencedEvent
		for e, err := range s.Read(t.Context(), q, o) {
			require.NoError(t, err)
			out = append(out, e)
		}
		return out
	}

	code, out, errOut := runCmd("tail", dir)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, read(dcb.All(), store.ReadOptions{}), decodeLines(t, out))

	code, out, errOut = runCmd("tail", "--type", "T1", "--type", "T2", "--tag", "k:1", dir, "--from", "10")
	require.Equal(t, 0, code, errOut)
	want := read(dcb.Query{Items: []dcb.QueryItem{{Types: []string{"T1", "T2"}, Tags: []string{"k:1"}}}}, store.ReadOptions{From: 10})
	require.NotEmpty(t, want)
	assert.Equal(t, want, decodeLines(t, out))

	code, out, errOut = runCmd("tail", dir, "--type", "T0", "--tag", "k:0", "--or", "--tag", "k:1", "--from", "5")
	require.Equal(t, 0, code, errOut)
	want = read(dcb.Query{Items: []dcb.QueryItem{{Types: []string{"T0"}, Tags: []string{"k:0"}}, {Tags: []string{"k:1"}}}}, store.ReadOptions{From: 5})
	require.NotEmpty(t, want)
	assert.Equal(t, want, decodeLines(t, out))

	// A cursor: the second run prints only what came after the first.
	code, out, errOut = runCmd("tail", "--cursor", "ops", dir)
	require.Equal(t, 0, code, errOut)
	assert.Len(t, decodeLines(t, out), 50)
	_, err = s.Append(t.Context(), []dcb.Event{tailEvent(50), tailEvent(51)}, nil)
	require.NoError(t, err)
	code, out, errOut = runCmd("tail", "--cursor", "ops", dir)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, read(dcb.All(), store.ReadOptions{From: 51}), decodeLines(t, out))

	// A cursor file outside the store (for a read-only store): a path.
	cursorFile := filepath.Join(t.TempDir(), "ops.cursor")
	code, out, errOut = runCmd("tail", "--cursor", cursorFile, dir)
	require.Equal(t, 0, code, errOut)
	assert.Len(t, decodeLines(t, out), 52)
	require.FileExists(t, cursorFile)
	_, err = s.Append(t.Context(), []dcb.Event{tailEvent(52)}, nil)
	require.NoError(t, err)
	code, out, errOut = runCmd("tail", "--cursor", cursorFile, dir)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, read(dcb.All(), store.ReadOptions{From: 53}), decodeLines(t, out))

	for _, bad := range [][]string{{"tail"}, {"tail", dir, "--type", ""}, {"tail", dir, "--cursor", ".hidden"}, {"tail", filepath.Join(dir, "nope")}} {
		code, _, errOut := runCmd(bad...)
		assert.Equal(t, 2, code, "%q: %s", bad, errOut)
		assert.NotEmpty(t, errOut)
	}
}

// TestTailFollow runs `possum tail --follow` as a process on a store that
// does not exist yet: it prints each event as it is appended, line by line
// through a pipe, and exits 0 on an interrupt.
func TestTailFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	cmd := possumCommand("tail", "--follow", "--tag", "all", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	watchdog := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()

	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	sc := bufio.NewScanner(out)
	for i := range 20 {
		// One append at a time, each seen before the next is made: the
		// lines are not held back in a buffer.
		_, err := s.Append(context.Background(), []dcb.Event{tailEvent(i), {Type: "Untagged"}}, nil)
		require.NoError(t, err)
		if !sc.Scan() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("tail --follow stopped; stderr: %s", stderr.String())
		}
		evs := decodeLines(t, sc.Text()+"\n")
		require.Equal(t, uint64(2*i+1), evs[0].Position)
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.NoError(t, cmd.Wait(), "an interrupt ends tail --follow with exit 0; stderr: %s", stderr.String())
}

// A tail whose cursor cannot be saved says so before printing anything,
// exit 2: a file or a directory in the way, a read-only place.
func TestTailCursorCheckedFirst(t *testing.T) {
	dir := tailStore(t, 5)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o640))
	cases := []struct{ cursor, why string }{
		{filepath.Join(file, "cursor"), "not a directory"},
		{t.TempDir() + "/", "directory"},
	}
	if runtime.GOOS == "linux" {
		cases = append(cases, struct{ cursor, why string }{"/proc/possum-cursor", "cannot be saved"})
	}
	if os.Geteuid() != 0 { // root writes anywhere the file system lets it
		ro := t.TempDir()
		require.NoError(t, os.Chmod(ro, 0o555))
		cases = append(cases, struct{ cursor, why string }{filepath.Join(ro, "cursor"), "permission denied"})
	}
	for _, c := range cases {
		for _, follow := range []string{"--follow=false", "--follow"} {
			code, out, errOut := runCmd("tail", dir, "--cursor", c.cursor, follow)
			assert.Equal(t, 2, code, "%s %s: %s", c.cursor, follow, errOut)
			assert.Empty(t, out, "%s: nothing printed", c.cursor)
			assert.Contains(t, errOut, c.why, c.cursor)
			assert.Contains(t, errOut, "nothing was printed", c.cursor)
		}
	}

	// A file where the store's cursors directory belongs.
	require.NoError(t, os.WriteFile(filepath.Join(dir, storedir.CursorsDir), nil, 0o640))
	code, out, errOut := runCmd("tail", dir, "--cursor", "ops")
	assert.Equal(t, 2, code, errOut)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "not a directory")
}

// Two tails on one cursor: the second is refused (exit 2, nothing
// printed) while the first runs; a tail killed with SIGKILL does not keep
// the next one out.
func TestTailCursorOneAtATime(t *testing.T) {
	dir := tailStore(t, 5)

	for _, cursor := range []string{"ops", filepath.Join(t.TempDir(), "ops.cursor")} {
		first := possumCommand("tail", "--follow", "--cursor", cursor, dir)
		out, err := first.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, first.Start())
		watchdog := time.AfterFunc(time.Minute, func() { _ = first.Process.Kill() })
		// Its first line is printed after it took the cursor.
		_, err = bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err)

		for _, follow := range []string{"--follow=false", "--follow"} {
			code, out, errOut := runCmd("tail", dir, "--cursor", cursor, follow)
			assert.Equal(t, 2, code, "%s: %s", cursor, errOut)
			assert.Empty(t, out, cursor)
			assert.Contains(t, errOut, "is in use: another consumer holds its lock", cursor)
			assert.NotContains(t, errOut, "possum tail: possum", cursor)
		}

		require.NoError(t, first.Process.Kill()) // SIGKILL: no chance to unlock
		_ = first.Wait()
		watchdog.Stop()
		code, out2, errOut := runCmd("tail", dir, "--cursor", cursor)
		require.Equal(t, 0, code, "after the first was killed: %s", errOut)
		assert.Len(t, decodeLines(t, out2), 5, "the killed tail saved no position")
	}
}

// read --from and tail --from take the same default, 0, and mean the same:
// the first position to print, 0 for the first there is.
func TestReadAndTailFrom(t *testing.T) {
	dir := tailStore(t, 8)
	var defaults []string
	for _, name := range []string{"read", "tail"} {
		c, _ := lookup(name)
		fs := c.flagSet()
		c.setup(fs)
		defaults = append(defaults, fs.Lookup("from").DefValue)
	}
	assert.Equal(t, []string{"0", "0"}, defaults)
	for _, from := range []string{"", "0", "1", "5", "8", "9"} {
		args := []string{dir}
		if from != "" {
			args = append(args, "--from", from)
		}
		code, read, errOut := runCmd(append([]string{"read", "--table=false"}, args...)...)
		require.Equal(t, 0, code, errOut)
		code, tail, errOut := runCmd(append([]string{"tail"}, args...)...)
		require.Equal(t, 0, code, errOut)
		assert.Equal(t, read, tail, "--from %q", from)
		n := 8
		if f, _ := strconv.Atoi(from); f > 1 {
			n = max(0, 9-f)
		}
		assert.Len(t, decodeLines(t, tail), n, "--from %q", from)
	}
}

// tailStore returns the directory of a closed store of n tailEvents.
func tailStore(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	for i := range n {
		_, err := s.Append(t.Context(), []dcb.Event{tailEvent(i)}, nil)
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	return dir
}
