package indexer

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIDs: every ID added is found at its position; one never added is
// not; an ID whose hash another took first (forced here: xxhash64 clashes
// are not found by chance) is kept whole and found exactly, and the one
// that took the hash is still found (the caller confirms it by reading).
// The snapshot keeps them all, and only up to its position.
func TestIDs(t *testing.T) {
	x := New()
	for pos := uint64(1); pos <= 100; pos++ {
		e := dcb.Event{Type: "T"}
		if pos%2 == 0 {
			e.ID = fmt.Sprintf("id-%d", pos)
		}
		require.NoError(t, x.Add(pos, e))
	}
	x.mu.Lock()
	x.ids.addHash(x.ids.hashOf(t, "id-4"), "clash", 4) // a second ID with id-4's hash
	x.mu.Unlock()
	check := func(x *Index, upTo uint64) {
		t.Helper()
		assert.Equal(t, int(upTo/2)+1, x.IDs())
		for pos := uint64(2); pos <= upTo; pos += 2 {
			got, exact, ok := x.ID(fmt.Sprintf("id-%d", pos))
			require.True(t, ok, "id-%d", pos)
			assert.Equal(t, pos, got)
			assert.False(t, exact)
		}
		_, _, ok := x.ID("id-3")
		assert.False(t, ok)
		got, exact, ok := x.ID("clash")
		require.True(t, ok)
		assert.True(t, exact)
		assert.Equal(t, uint64(4), got)
	}
	check(x, 100)

	dir := t.TempDir()
	path := filepath.Join(dir, "snapshot")
	require.NoError(t, WriteSnapshot(vfs.OS, path, path+".tmp", x, 60))
	y, upTo, err := ReadSnapshot(path)
	require.NoError(t, err)
	require.Equal(t, uint64(60), upTo)
	check(y, 60)
	_, _, ok := y.ID("id-62")
	assert.False(t, ok, "an ID beyond the snapshot's position")
}

// hashOf returns the hash under which id is kept.
func (ids *eventIDs) hashOf(t *testing.T, id string) uint64 {
	for h, p := range ids.byHash {
		if fmt.Sprintf("id-%d", p) == id {
			return h
		}
	}
	t.Fatalf("no hash for %s", id)
	return 0
}

// BenchmarkIDMemory reports the memory the index takes per event ID: the
// idempotency window holds every ID of the store.
func BenchmarkIDMemory(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ids := newEventIDs()
		for i := range n {
			ids.add(fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i), uint64(i+1))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/id")
		runtime.KeepAlive(ids)
	}
}
