package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// walHash is what must not change when nothing is appended: the WAL's
// files. (Opening a store may rewrite its checkpoint.)
func walHash(t *testing.T, dir string) map[string]string {
	t.Helper()
	return testdir.Hash(t, filepath.Join(dir, "wal"))
}

// events reads every event of the store in dir, with neither positions
// nor timestamps: what an append gave.
func events(t *testing.T, dir string) []dcb.Event {
	t.Helper()
	var out []dcb.Event
	for _, e := range readIn(t, dir, dcb.All(), store.ReadOptions{}) {
		out = append(out, e.Event)
	}
	return out
}

// untimed returns events without their timestamps (which the store set).
func untimed(events []dcb.Event) []dcb.Event {
	out := slices.Clone(events)
	for i := range out {
		out[i].Timestamp = time.Time{}
	}
	return out
}

func TestAppendOne(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	r := possum(t, "", "append", "--type", "CourseDefined", dir, "--tag", "course:1", "--data", `{"seats": 2}`, "--meta", "by=me", "--meta", "why=a=b")
	require.Equal(t, 0, r.code, r)
	assert.Equal(t, "1\n", r.stdout, "the position, alone on its line")
	assert.Empty(t, r.stderr)
	r = possum(t, "", "append", dir, "--type", "StudentEnrolled", "--tag", "course:1", "--tag", "student:ada")
	require.Equal(t, 0, r.code, r)
	assert.Equal(t, "2\n", r.stdout)
	assert.Equal(t, []dcb.Event{
		{Type: "CourseDefined", Tags: []string{"course:1"}, Data: json.RawMessage(`{"seats": 2}`), Metadata: map[string]string{"by": "me", "why": "a=b"}},
		{Type: "StudentEnrolled", Tags: []string{"course:1", "student:ada"}},
	}, untimed(events(t, dir)))
}

// --id and --timestamp: the event keeps both; the same append sent again
// prints the position it has and writes nothing, even under a condition
// its own event now fails; the ID on another event is refused, exit 2.
func TestAppendIDAndTimestamp(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	enrol := []string{"append", dir, "--type", "StudentEnrolled", "--tag", "student:ada", "--id", "enrol-ada",
		"--timestamp", "2019-03-01T08:00:00.123456789+01:00", "--if-none-match", "--tag", "student:ada"}
	for range 2 {
		r := possum(t, "", enrol...)
		require.Equal(t, 0, r.code, r)
		assert.Equal(t, "1\n", r.stdout)
	}
	got := events(t, dir)
	require.Len(t, got, 1, "the second append was a retry")
	assert.Equal(t, "enrol-ada", got[0].ID)
	assert.True(t, time.Date(2019, 3, 1, 7, 0, 0, 123456789, time.UTC).Equal(got[0].Timestamp), "%v", got[0].Timestamp)

	before := walHash(t, dir)
	r := possum(t, "", "append", dir, "--type", "StudentEnrolled", "--tag", "student:bob", "--id", "enrol-ada")
	assert.Equal(t, 2, r.code, r)
	assert.Contains(t, r.stderr, `event id conflict: event 0 (id "enrol-ada") is the event at position 1, which differs in its tags`)
	assert.Equal(t, before, walHash(t, dir), "nothing written")
}

// --if-none-match: the query flags after it are the condition's; a failed
// condition exits 1, names the event that matched and writes nothing.
func TestAppendCondition(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	for _, args := range [][]string{
		{"--type", "CourseDefined", "--tag", "course:1"},
		{"--type", "StudentEnrolled", "--tag", "course:1", "--tag", "student:ada"},
	} {
		r := possum(t, "", append([]string{"append", dir}, args...)...)
		require.Equal(t, 0, r.code, r)
	}
	enrol := []string{"append", dir, "--type", "StudentEnrolled", "--tag", "course:1", "--tag", "student:bob", "--if-none-match"}
	for _, c := range []struct {
		cond     []string
		conflict string // "": appended
	}{
		{[]string{"--tag", "course:1", "--after", "1"}, "event 2 (StudentEnrolled course:1 student:ada) matches the condition and comes after position 1"},
		{[]string{"--tag", "course:1"}, "event 1 (CourseDefined course:1) matches the condition and comes after position 0"},
		{[]string{"--after", "1"}, "event 2 (StudentEnrolled course:1 student:ada)"}, // no query flags: any event
		{[]string{"--type", "CourseCancelled", "--or", "--tag", "student:ada", "--tag", "course:1", "--after", "1"}, "event 2 "},
		{[]string{"--after", "1", "--type", "CourseCancelled", "--or", "--tag", "student:bob"}, ""},
		{[]string{"--tag", "course:1", "--after", "2"}, "event 3 (StudentEnrolled course:1 student:bob) matches the condition and comes after position 2"},
	} {
		before := walHash(t, dir)
		r := possum(t, "", append(enrol, c.cond...)...)
		if c.conflict == "" {
			require.Equal(t, 0, r.code, "%q: %s", c.cond, r)
			assert.Equal(t, "3\n", r.stdout)
			continue
		}
		assert.Equal(t, 1, r.code, "%q: %s", c.cond, r)
		assert.Empty(t, r.stdout, "%q", c.cond)
		assert.Contains(t, r.stderr, "possum append: not appended: "+c.conflict, "%q", c.cond)
		assert.Contains(t, r.stderr, "nothing was written", "%q", c.cond)
		assert.Equal(t, before, walHash(t, dir), "%q wrote", c.cond)
	}
	assert.Len(t, events(t, dir), 3)
}

// Usage errors exit 2 with a message and write nothing.
func TestAppendBadUsage(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "store")
	readStore(t, dir, 3)
	before := testdir.Hash(t, dir)
	newDir := filepath.Join(base, "new")
	for _, c := range []struct {
		args  []string
		stdin string
		msg   string
	}{
		{[]string{"append"}, "", "want 1 to 2 arguments (DIR [-]), got none"},
		{[]string{"append", dir, "x"}, "", `the argument after DIR can only be -, for stdin; got "x"`},
		{[]string{"append", dir, "--type", ""}, "", "a type is never empty"},
		{[]string{"append", dir, "--type", "A", "--type", "B"}, "", `an event has one type, got "A" and "B"`},
		{[]string{"append", dir, "--type", "A", "--tag", ""}, "", "a tag is never empty"},
		{[]string{"append", dir, "--type", "A", "--tag", "\xff"}, "", "not valid UTF-8"},
		{[]string{"append", dir, "--type", "A", "--data", "{nope"}, "", "-data: not valid JSON"},
		{[]string{"append", dir, "--type", "A", "--meta", "novalue"}, "", `want KEY=VALUE, got "novalue"`},
		{[]string{"append", dir, "--type", "A", "--meta", "=v"}, "", `want KEY=VALUE`},
		{[]string{"append", dir, "--type", "A", "--id", ""}, "", "an ID is never empty"},
		{[]string{"append", dir, "--type", "A", "--id", strings.Repeat("i", 300)}, "", "id of 300 bytes, over the limit of 256"},
		{[]string{"append", dir, "--type", "A", "--timestamp", "yesterday"}, "", `not an RFC 3339 time (2026-12-04T10:00:00Z): "yesterday"`},
		{[]string{"append", dir, "--type", "A", "--timestamp", "0001-01-01T00:00:00Z"}, "", "the zero time is no timestamp"},
		{[]string{"append", dir, "--type", "A", "--timestamp", "1500-01-01T00:00:00Z"}, "", "1678"},
		{[]string{"append", dir, "--type", "A", "--meta", "k=1", "--meta", "k=2"}, "", `metadata key "k" given twice`},
		{[]string{"append", dir, "--type", "A", "--or", "--tag", "x"}, "", "give --if-none-match first"},
		{[]string{"append", dir, "--type", "A", "--after", "3"}, "", "--after belongs to a condition"},
		{[]string{"append", dir, "--type", "A", "--if-none-match", "--tag", "x", "--or"}, "", "--or must be followed by a --type or --tag"},
		{[]string{"append", dir, "--type", "A", "--if-none-match", "--or"}, "", "--or must follow a --type or --tag"},
		{[]string{"append", dir, "--type", "A", "--if-none-match", "--if-none-match"}, "", "--if-none-match given twice"},
		{[]string{"append", dir, "--type", "A", "--if-none-match=false"}, "", "takes no value"},
		{[]string{"append", dir, "--if-none-match", "--type", "A"}, "", "the event needs a --type, before any --if-none-match"},
		{[]string{"append", dir, "--tag", "x"}, `{"type":"B"}`, "the event needs a --type"},
		{[]string{"append", dir, "--type", "A", "--stdin"}, `{"type":"B"}`, "NDJSON on stdin describes its own events"},
		{[]string{"append", dir, "-", "--tag", "x"}, `{"type":"B"}`, "NDJSON on stdin describes its own events"},
		{[]string{"append", dir, "--batch", "0"}, `{"type":"B"}`, "--batch 0"},
		{[]string{"append", dir, "--no-such-flag"}, "", "no-such-flag"},
		{[]string{"append", dir}, "", "no events on stdin"},
		{[]string{"append", dir}, "\n\n", "no events on stdin"},
		{[]string{"append", dir}, `{"type":""}` + "\n", "line 1: dcb: invalid event: empty type; nothing was appended"},
		{[]string{"append", newDir}, "\n" + `{"type":"B","tags":"x"}`, "line 2: tags: want []string, got a JSON string; nothing was appended"},
		// encoding/json would store a stray byte as U+FFFD: refused, as embedded.
		{[]string{"append", newDir}, "{\"type\":\"B\",\"tags\":[\"a\xff\"]}\n", "line 1: dcb: invalid event: its tags: not valid UTF-8; nothing was appended"},
		{[]string{"append", newDir}, "{\"type\":\"B\xfe\"}\n", "line 1: dcb: invalid event: its type: not valid UTF-8"},
		{[]string{"append", newDir}, "{\"type\":\"B\",\"metadata\":{\"k\":\"\xc3\"}}\n", "line 1: dcb: invalid event: its metadata: not valid UTF-8"},
		{[]string{"append", newDir, "--type", "A", "--data", "1", "--tag", "\xff"}, "", "not valid UTF-8"},
	} {
		r := possum(t, c.stdin, c.args...)
		assert.Equal(t, 2, r.code, "%q: %s", c.args, r)
		assert.Empty(t, r.stdout, "%q", c.args)
		assert.Contains(t, r.stderr, c.msg, "%q", c.args)
		assert.Equal(t, 1, strings.Count(r.stderr, "possum append: "), "%q: one message: %s", c.args, r.stderr)
		require.Equal(t, before, testdir.Hash(t, dir), "%q changed the store", c.args)
		require.NoDirExists(t, newDir, "%q made a store", c.args)
	}
}

// NDJSON from possum read appends as the same events in another store.
func TestImportRoundTrip(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	readStore(t, src, 40)
	ndjson := possum(t, "", "read", src)
	require.Equal(t, 0, ndjson.code, ndjson)
	for i, args := range [][]string{{}, {"-"}, {"--stdin"}} {
		dst := filepath.Join(base, fmt.Sprint("dst", i))
		r := possum(t, ndjson.stdout, append([]string{"append", dst, "--batch", "7"}, args...)...)
		require.Equal(t, 0, r.code, "%q: %s", args, r)
		assert.Regexp(t, `^appended 40 events in 6 batches, positions 1\.\.40, in \d+ms\n$`, r.stdout, "%q", args)
		assert.Empty(t, r.stderr, "no progress bar but on a terminal")
		assert.Equal(t, events(t, src), events(t, dst), "%q: event for event: timestamps, ids, data", args)
		back := possum(t, "", "read", dst)
		assert.Equal(t, ndjson.stdout, back.stdout, "%q: the copy reads as the original, byte for byte", args)
	}

	// Again: every event carries an id the store holds, so every batch is
	// a retry, and nothing is written.
	dst := filepath.Join(base, "dst0")
	before := testdir.Hash(t, filepath.Join(dst, "wal"))
	r := possum(t, ndjson.stdout, "append", dst, "--batch", "7")
	require.Equal(t, 0, r.code, r)
	assert.Regexp(t, `^appended 0 events in 0 batches, positions 1\.\.40, in \d+ms; 40 events the store held already \(by their ids\), not written again\n$`, r.stdout)
	assert.Equal(t, before, testdir.Hash(t, filepath.Join(dst, "wal")), "nothing written")
}

// A bad line stops an import: the lines before it are appended (whole
// batches and the start of the next), none after; the message names the
// line and what was appended. Exit 1: the store changed.
func TestImportBadLine(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	var in strings.Builder
	for i := range 40 {
		line := fmt.Sprintf(`{"type":"T","tags":["n:%d"],"data":{"i":%d}}`, i+1, i+1)
		if i+1 == 25 {
			line = `{"type":"T","data":{"i":25}` // not JSON
		}
		in.WriteString(line + "\n")
	}
	r := possum(t, in.String(), "append", dir, "--batch", "10")
	assert.Equal(t, 1, r.code, r)
	assert.Equal(t, "appended 24 events in 3 batches, positions 1..24, in ", r.stdout[:min(len(r.stdout), 53)])
	assert.Contains(t, r.stderr, "possum append: line 25: not JSON: ")
	assert.Contains(t, r.stderr, "lines 1..24 were appended (positions 1..24), nothing after them")
	got := events(t, dir)
	require.Len(t, got, 24)
	assert.Equal(t, []string{"n:24"}, got[23].Tags)

	// Blank lines count as lines.
	r = possum(t, "\n"+`{"type":"U"}`+"\n\n"+`{"type":"U","metadata":{"k":1}}`+"\n", "append", dir)
	assert.Equal(t, 1, r.code, r)
	assert.Contains(t, r.stderr, "line 4: metadata: want string, got a JSON number; lines 1..3 were appended (positions 25..25)")
	assert.Len(t, events(t, dir), 25)
}

// A store another process has open: append refuses, naming the process
// where the platform can, and writes nothing; read, tail and stats work.
func TestHeldStore(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	readStore(t, dir, 12)
	pid := holdOpen(t, dir)
	before := walHash(t, dir)

	for _, c := range []struct {
		args  []string
		stdin string
	}{
		{[]string{"append", dir, "--type", "X"}, ""},
		{[]string{"append", dir}, `{"type":"X"}`},
	} {
		r := possum(t, c.stdin, c.args...)
		assert.Equal(t, 2, r.code, "%q: %s", c.args, r)
		assert.Empty(t, r.stdout, "%q", c.args)
		want := dir + " is open in another process"
		if runtime.GOOS == "linux" {
			want += fmt.Sprintf(" (pid %d)", pid)
		}
		assert.Contains(t, r.stderr, want, "%q", c.args)
		assert.Contains(t, r.stderr, "nothing was written", "%q", c.args)
		assert.Equal(t, before, walHash(t, dir), "%q", c.args)
	}

	want := readIn(t, dir, dcb.All(), store.ReadOptions{})
	require.Len(t, want, 12)
	for _, cmd := range []string{"read", "tail"} {
		r := possum(t, "", cmd, dir)
		require.Equal(t, 0, r.code, "%s: %s", cmd, r)
		assert.Equal(t, want, decodeLines(t, r.stdout), cmd)
	}
	st := statsJSON(t, dir)
	assert.Equal(t, uint64(12), st.Head)
	assert.Equal(t, uint64(12), st.Checkpointed)
	assert.Nil(t, st.Projected, "only the writer knows")
	assert.Nil(t, st.Lag, "only the writer knows")
	if runtime.GOOS == "linux" {
		assert.Equal(t, writerInfo{State: "open", PID: pid}, st.Writer)
		r := possum(t, "", "stats", dir)
		assert.Contains(t, r.stdout, fmt.Sprintf("open by pid %d", pid))
		assert.Contains(t, r.stdout, "known only to the writer (at least 12)")
	}
}

// An import that outran the projector says so: the files of the positions
// after the checkpoint wait for the next Open.
func TestProjectionNote(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	readStore(t, dir, 5)
	assert.Empty(t, projectionNote(dir, 5))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "checkpoint"), []byte(`{"version":1,"position":3,"tag_entries":0,"events_mtime":0}`+"\n"), 0o640))
	assert.Equal(t, "event and index files are written up to position 3; the next process to open the store as its writer writes the rest (reads do not need them)",
		projectionNote(dir, 5))
}
