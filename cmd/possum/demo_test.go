package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rejected is the line of the racer the store turned away.
var rejected = regexp.MustCompile(`(?m)^  (\S+) +REJECTED: the store's append condition failed \(event (\d+) came after position (\d+)\)$`)

// TestDemo runs possum demo three times on one store: each run opens a
// course, two students race for its last seat, and the store's append
// condition rejects one, who reads again and finds the course full. The
// files it names exist, and the commands it suggests work.
func TestDemo(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "demo")
	for run, want := range []struct {
		header, beaten string
		head           uint64
	}{
		{"a new store", "event 3 came after position 2", 3},
		{"the store holds 3 events from earlier runs", "event 6 came after position 5", 6},
		{"the store holds 6 events from earlier runs", "event 9 came after position 8", 9},
	} {
		r := possum(t, "", "demo", dir)
		require.Equal(t, 0, r.code, r)
		out := r.stdout
		course := fmt.Sprint(run + 1)
		assert.Contains(t, out, fmt.Sprintf("possum demo, run %d, in %s: %s\n", run+1, dir, want.header))
		assert.Contains(t, out, "course "+course+" opens with 2 seats")
		m := rejected.FindStringSubmatch(out)
		require.NotNil(t, m, "no rejection by the store:\n%s", out)
		assert.Contains(t, m[0], want.beaten)
		loser := m[1]
		assert.Regexp(t, `(?m)^  \S+ +enrolled in course `+course+` +position \d+$`, out, "the winner")
		assert.Contains(t, out, fmt.Sprintf("  %-4s reads again (up to position %d), decides again: course %s is full (2 of 2 seats taken)\n", loser, want.head, course))
		assert.LessOrEqual(t, strings.Count(out, "\n"), 30, "short:\n%s", out)
		assert.Empty(t, r.stderr)

		// The files it shows are there.
		_, files, ok := strings.Cut(out, "files in "+dir)
		require.True(t, ok, out)
		files, _, _ = strings.Cut(files, "\n\n")
		paths := regexp.MustCompile(`(?m)^  (\S+) `).FindAllStringSubmatch(files, -1)
		require.Len(t, paths, 4, files)
		for _, p := range paths {
			assert.FileExists(t, filepath.Join(dir, p[1]))
		}
		assert.Contains(t, out, fmt.Sprintf("events/%020d.json", want.head))
	}
	r := possum(t, "", "read", dir, "--tag", "course:1", "--table")
	require.Equal(t, 0, r.code, r)
	assert.Len(t, strings.Split(strings.TrimSpace(r.stdout), "\n"), 4, "a header and three events:\n%s", r.stdout)
	r = possum(t, "", "stats", dir)
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "  head           9\n")

	rep, _ := runJSON(t, 0, "verify", "--json", dir)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
	assert.Equal(t, uint64(9), rep.Head)
}

// Every run shows the rejection, however the racers are scheduled: both
// read before either appends. In this process, so that -race sees the
// racers.
func TestDemoAlwaysRejects(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	for run := 1; run <= 12; run++ {
		code, out, errOut := runCmd("demo", dir)
		require.Equal(t, 0, code, "run %d\nstdout: %s\nstderr: %s", run, out, errOut)
		assert.Len(t, rejected.FindAllString(out, -1), 1, "run %d:\n%s", run, out)
		if run >= 3 {
			assert.Regexp(t, `(?m)^\S+ may not enrol: \S+ takes 2 courses already, the most a student may$`, out, "run %d", run)
		}
	}
}

func TestDemoRefused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "demo")
	holdOpen(t, dir)
	r := possum(t, "", "demo", dir)
	assert.Equal(t, 2, r.code, r)
	assert.Empty(t, r.stdout)
	assert.Contains(t, r.stderr, "possum demo: "+dir+" is open in another process")

	r = possum(t, "", "demo", dir, "other")
	assert.Equal(t, 2, r.code, r)
	assert.Contains(t, r.stderr, "want at most 1 argument ([DIR]), got 2")
	_, err := os.Stat(filepath.Join(dir, "other"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
