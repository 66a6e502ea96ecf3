package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// verifyMemoryBound is the peak resident size possum verify may reach on
// the stores TestVerifyMemory builds, whatever their size: the Go runtime,
// the WAL read one segment at a time into one buffer (the stores' segments
// are 1 MiB), and per type and tag a count and a hash of its positions
// (6,610 of them here). possum verify kept the whole index in memory
// before: 915 MB on a 10M-event store.
const verifyMemoryBound = 48 << 20

// verifyGrowthBound bounds how much more memory possum verify may take on
// a store of 4 times the events: the noise of a garbage collector.
const verifyGrowthBound = 3 << 20

// verifySegmentSize is the WAL segment size of the stores TestVerifyMemory
// builds: small, so that even its smaller store fills several segments and
// the two stores differ in their number of segments alone.
const verifySegmentSize = 1 << 20

// TestVerifyMemory: possum verify, a child process, reads a store of
// POSSUM_VERIFY_EVENTS events (100,000 by default, 40,000 with -short;
// set 1000000 for the 1M store) and one of a quarter of that; its
// peak resident size (the child's own VmHWM) stays under verifyMemoryBound
// at both, and grows by less than verifyGrowthBound from one to the other: it
// streams, its memory independent of the number of events. The stores
// hold no event files (the WAL and index files are what verify could hold
// in memory; an event file is read, compared and dropped, one at a time).
// Under the race detector it runs small and measures nothing.
func TestVerifyMemory(t *testing.T) {
	n := testenv.Scaled(t, "POSSUM_VERIFY_EVENTS", 100_000, 40_000)
	if testenv.Race {
		n = min(n, 2_000) // the race detector's shadow memory is no measure anyway
	}
	base := t.TempDir()
	var rss [2]int64
	for i, events := range []int{n / 4, n} {
		dir := filepath.Join(base, fmt.Sprint(events))
		buildIndexedStore(t, dir, events)
		out, peak := peakRSS(t, "verify", dir)
		assert.Contains(t, out, "consistent")
		rss[i] = peak
		t.Logf("%d events: possum verify peaked at %.1f MiB resident", events, float64(rss[i])/(1<<20))
	}
	if testenv.Race {
		return // built with the race detector: not a measure of memory
	}
	for _, r := range rss {
		assert.Less(t, r, int64(verifyMemoryBound), "peak resident size of possum verify")
	}
	// An index in memory would grow by some 6 MiB from one to the other.
	assert.Less(t, rss[1]-rss[0], int64(verifyGrowthBound), "4 times the events may cost no more memory")
}

// peakRSSEnv makes the test binary run as the possum command and, once
// the command is done, print its own peak resident size.
const peakRSSEnv = "POSSUM_TEST_PEAK_RSS"

func init() {
	child.Register(peakRSSEnv, func(string) {
		code := run(os.Args[1:], os.Stdout, os.Stderr)
		// VmHWM, not getrusage: a child's ru_maxrss keeps the high-water
		// mark of the parent it was forked from (exec keeps it), VmHWM is
		// the exec'd process's own.
		b, err := os.ReadFile("/proc/self/status")
		if err == nil {
			for line := range strings.Lines(string(b)) {
				if strings.HasPrefix(line, "VmHWM:") {
					fmt.Fprintf(os.Stdout, "\npeak-rss %s", strings.TrimSpace(strings.TrimPrefix(line, "VmHWM:")))
				}
			}
		}
		os.Exit(code)
	})
}

// peakRSS runs possum with args as a child process and returns its output
// and its peak resident size, in bytes.
func peakRSS(t *testing.T, args ...string) (string, int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), peakRSSEnv+"=1")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	out, peak, ok := strings.Cut(string(b), "\npeak-rss ")
	require.True(t, ok, "%s", b)
	var kib int64
	_, err = fmt.Sscanf(peak, "%d kB", &kib)
	require.NoError(t, err, "%q", peak)
	return out, kib << 10
}

// buildIndexedStore makes a closed store in dir of n events in appends of
// 1,000, projected into index files only: types T0..T9, and eight tags
// per event out of 6,600 (c:0..c:999, s:0..s:4999, g0:0..g5:99), so that
// an index held in memory would grow by some 80 bytes an event.
func buildIndexedStore(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := store.Open(dir, &store.Options{NoSync: true, SegmentSize: verifySegmentSize, Projection: &store.Projection{TypeIndex: true, TagIndex: true}})
	require.NoError(t, err)
	ctx := context.Background()
	batch := make([]dcb.Event, 0, 1000)
	for i := range n {
		tags := []string{fmt.Sprintf("c:%d", i%1000), fmt.Sprintf("s:%d", i%5000)}
		for g := range 6 {
			tags = append(tags, fmt.Sprintf("g%d:%d", g, (i/(g+1))%100))
		}
		batch = append(batch, dcb.Event{Type: fmt.Sprintf("T%d", i%10), Tags: tags,
			Data: []byte(fmt.Sprintf(`{"i":%d,"name":"student %d of course %d"}`, i, i%5000, i%1000))})
		if len(batch) == cap(batch) || i == n-1 {
			_, err := s.Append(ctx, batch, nil)
			require.NoError(t, err)
			batch = batch[:0]
		}
	}
	closeProjected(t, s)
}
