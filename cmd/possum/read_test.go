package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readStore makes a closed store in dir holding tailEvent(0..n-1), one per
// append.
func readStore(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	for i := range n {
		_, err := s.Append(context.Background(), []dcb.Event{tailEvent(i)}, nil)
		require.NoError(t, err)
	}
	closeProjected(t, s)
}

// readIn reads the store in dir in this process, for comparison.
func readIn(t *testing.T, dir string, q dcb.Query, o store.ReadOptions) []dcb.SequencedEvent {
	t.Helper()
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer f.Close()
	var out []dcb.SequencedEvent
	for e, err := range f.Read(t.Context(), q, o) {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

// TestRead runs possum read as a process: NDJSON, the lines of tail, with
// the query flags, --from, --limit and --backwards anywhere on the line.
func TestRead(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	readStore(t, dir, 40)
	item := func(types, tags []string) dcb.QueryItem { return dcb.QueryItem{Types: types, Tags: tags} }
	for _, c := range []struct {
		args []string
		q    dcb.Query
		o    store.ReadOptions
	}{
		{[]string{dir}, dcb.All(), store.ReadOptions{}},
		{[]string{"--type", "T1", dir, "--type", "T2", "--tag", "k:1"}, dcb.Query{Items: []dcb.QueryItem{item([]string{"T1", "T2"}, []string{"k:1"})}}, store.ReadOptions{}},
		{[]string{dir, "--type", "T0", "--or", "--tag", "k:1", "--tag", "all"}, dcb.Query{Items: []dcb.QueryItem{item([]string{"T0"}, nil), item(nil, []string{"k:1", "all"})}}, store.ReadOptions{}},
		{[]string{dir, "--from", "10", "--limit", "5"}, dcb.All(), store.ReadOptions{From: 10, Limit: 5}},
		{[]string{"--backwards", dir, "--limit", "3", "--tag", "k:2"}, dcb.Query{Items: []dcb.QueryItem{item(nil, []string{"k:2"})}}, store.ReadOptions{Backwards: true, Limit: 3}},
		{[]string{"--backwards", "--from", "20", dir}, dcb.All(), store.ReadOptions{Backwards: true, From: 20}},
		{[]string{dir, "--tag", "no-such-tag"}, dcb.Query{Items: []dcb.QueryItem{item(nil, []string{"no-such-tag"})}}, store.ReadOptions{}},
	} {
		// In this process: the variants of the command line; the
		// process, below.
		code, stdout, stderr := runCmd(append([]string{"read"}, c.args...)...)
		require.Equal(t, 0, code, "%q: %s", c.args, stderr)
		assert.Empty(t, stderr)
		assert.Equal(t, readIn(t, dir, c.q, c.o), decodeLines(t, stdout), "%q", c.args)
	}

	// As processes; the same bytes as tail.
	read, tail := possum(t, "", "read", dir, "--tag", "k:3"), possum(t, "", "tail", dir, "--tag", "k:3")
	require.Equal(t, 0, read.code, read)
	assert.Equal(t, tail.stdout, read.stdout)
}

func TestReadTable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	readStore(t, dir, 5)
	r := possum(t, "", "read", dir, "--table", "--type", "T1")
	require.Equal(t, 0, r.code, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 3, r.stdout) // the header, positions 2 and 5
	assert.Regexp(t, `^POSITION +TIME \(UTC\) +TYPE +TAGS +DATA +METADATA$`, lines[0])
	assert.Regexp(t, `^2 +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} +T1 +k:1 all +\{"i":1\} +m=v$`, lines[1])
	assert.Regexp(t, `^5 +.* T1 +k:0 all +\{"i":4\} +m=v$`, lines[2])

	r = possum(t, "", "read", dir, "--table", "--tag", "nothing")
	require.Equal(t, 0, r.code, r)
	assert.Equal(t, "no events match\n", r.stdout)

	// --table=false is NDJSON.
	r = possum(t, "", "read", dir, "--table=false", "--limit", "1")
	require.Equal(t, 0, r.code, r)
	assert.Len(t, decodeLines(t, r.stdout), 1)
}

// Usage errors and what is no store exit 2 with a message, print nothing
// and change nothing.
func TestReadBadUsage(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "store")
	readStore(t, dir, 3)
	before := testdir.Hash(t, dir)
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"read"}, "want exactly 1 argument (DIR), got none"},
		{[]string{"read", dir, dir}, "want exactly 1 argument"},
		{[]string{"read", dir, "--limit", "-1"}, "--limit -1"},
		{[]string{"read", dir, "--from", "x"}, `invalid value "x" for --from: want a whole number, 0 or more`},
		{[]string{"read", dir, "--or"}, "--or must follow a --type or --tag"},
		{[]string{"read", dir, "--type", "A", "--or"}, "--or must be followed"},
		{[]string{"read", dir, "--tag", ""}, "a tag is never empty"},
		{[]string{"read", dir, "--no-such-flag"}, "no-such-flag"},
		{[]string{"read", filepath.Join(base, "nope")}, "no store at " + filepath.Join(base, "nope")},
		{[]string{"read", base}, base + " is not a possum store"},
		{[]string{"tail", base}, base + " is not a possum store"},
		{[]string{"tail", dir, "--type", "A", "--or"}, "--or must be followed"},
	} {
		r := possum(t, "", c.args...)
		assert.Equal(t, 2, r.code, "%q: %s", c.args, r)
		assert.Empty(t, r.stdout, "%q", c.args)
		assert.Contains(t, r.stderr, c.msg, "%q", c.args)
	}
	assert.Equal(t, before, testdir.Hash(t, dir))
	assert.NoDirExists(t, filepath.Join(base, "nope"))
}

// TestReadMultilineData: Data stored over several lines (kept so, byte for
// byte, in its event file) comes out of read and tail on one line each, the
// same JSON value.
func TestReadMultilineData(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	data := "{\n  \"a\": 1,\n  \"b\": [\n    \"x y\"\n  ]\n}"
	_, err = s.Append(t.Context(), []dcb.Event{{Type: "Pretty", Data: []byte(data)}, {Type: "Plain", Data: []byte(`{"c": 2}`)}}, nil)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	for _, cmd := range []string{"read", "tail"} {
		r := possum(t, "", cmd, dir)
		require.Equal(t, 0, r.code, "%s: %s", cmd, r)
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		require.Len(t, lines, 2, "%s: one line an event: %q", cmd, r.stdout)
		var e struct{ Data json.RawMessage }
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &e))
		assert.JSONEq(t, data, string(e.Data), cmd)
		assert.Contains(t, lines[1], `{"c": 2}`, "%s: data on one line is kept byte for byte", cmd)
	}
}
