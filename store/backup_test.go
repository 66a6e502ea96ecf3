package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// requireCopyOf checks that the store in dir holds exactly the first head
// events of want (every field: positions, timestamps, IDs, metadata, data
// bytes), and that verify finds it consistent.
func requireCopyOf(t *testing.T, dir string, want []dcb.SequencedEvent, head uint64) {
	t.Helper()
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "possum verify of the copy: %+v", rep.Problems)
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	defer f.Close()
	got := readAll(t, f, dcb.All(), store.ReadOptions{})
	require.Len(t, got, int(head))
	require.Equal(t, want[:head], got)
}

// TestBackupUnderLoad: backups taken while eight writers append (with IDs,
// timestamps of their own, metadata) are each a copy of exactly the events
// up to their head, event for event; a second backup into the same
// directory copies only what is new; the copy opens as a store, verify
// finds it consistent, and a retry of an append it holds is answered from
// it.
func TestBackupUnderLoad(t *testing.T) {
	src := t.TempDir()
	s := open(t, src)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var appended atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				e := dcb.Event{
					Type:     "Wrote",
					Tags:     []string{fmt.Sprintf("writer:%d", w)},
					Data:     json.RawMessage(fmt.Sprintf(`{"w":%d, "i":%d}`, w, i)),
					Metadata: map[string]string{"i": fmt.Sprint(i)},
					ID:       fmt.Sprintf("%d-%d", w, i),
				}
				if i%3 == 0 {
					e.Timestamp = time.Unix(int64(1_600_000_000+i), int64(w)).UTC()
				}
				_, err := s.Append(ctx, []dcb.Event{e}, nil)
				if ctx.Err() != nil {
					return
				}
				assert.NoError(t, err)
				appended.Add(1)
			}
		})
	}
	waitFor := func(n int64) {
		require.Eventually(t, func() bool { return appended.Load() >= n }, time.Minute, time.Millisecond)
	}

	dst := filepath.Join(t.TempDir(), "backup")
	waitFor(200)
	first, err := s.Backup(t.Context(), dst)
	require.NoError(t, err)
	require.GreaterOrEqual(t, first.Head, uint64(200))
	assert.Positive(t, first.Bytes)

	waitFor(int64(first.Head) + 300)
	second, err := s.Backup(t.Context(), dst)
	require.NoError(t, err)
	require.Greater(t, second.Head, first.Head)
	stop()
	wg.Wait()
	all := readAll(t, s, dcb.All(), store.ReadOptions{})
	requireCopyOf(t, dst, all, second.Head)
	walBytes := dirSize(t, filepath.Join(dst, "wal"))
	assert.Less(t, second.Bytes, walBytes, "the second backup copies what is new, not the whole WAL (%d of %d bytes)", second.Bytes, walBytes)

	third, err := s.Backup(t.Context(), dst)
	require.NoError(t, err)
	assert.Equal(t, s.Head(), third.Head, "appends stopped: the backup holds every event")
	fourth, err := s.Backup(t.Context(), dst)
	require.NoError(t, err)
	assert.Zero(t, fourth.Bytes, "nothing new, nothing written")
	requireCopyOf(t, dst, all, third.Head)

	c := open(t, dst)
	require.Equal(t, third.Head, c.Head())
	last, err := c.Append(t.Context(), []dcb.Event{all[9].Event}, nil)
	require.NoError(t, err, "a retry of an event the copy holds")
	assert.Equal(t, uint64(10), last)
	assert.Equal(t, third.Head, c.Head())
}

// TestBackupResumesAndRefuses: a backup whose copy was cut short (its
// process killed mid-copy) resumes from its last whole record; a directory
// holding anything but a backup of this store is refused, nothing changed.
func TestBackupResumesAndRefuses(t *testing.T) {
	src := t.TempDir()
	s := open(t, src)
	for i := range 50 {
		appendOK(t, s, dcb.Event{Type: "E", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}
	dst := filepath.Join(t.TempDir(), "backup")
	rep, err := s.Backup(t.Context(), dst)
	require.NoError(t, err)
	require.Equal(t, uint64(50), rep.Head)
	seg := filepath.Join(dst, "wal", "00000000000000000001")
	fi, err := os.Stat(seg)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(seg, fi.Size()-7), "a copy cut mid-record")
	for range 10 {
		appendOK(t, s, ev("More"))
	}
	rep, err = s.Backup(t.Context(), dst)
	require.NoError(t, err)
	assert.Equal(t, uint64(60), rep.Head)
	requireCopyOf(t, dst, readAll(t, s, dcb.All(), store.ReadOptions{}), 60)

	other := t.TempDir()
	o := open(t, other)
	appendOK(t, o, ev("Another"), ev("Store"))
	require.NoError(t, o.Close())
	before := testdir.Hash(t, other)
	_, err = s.Backup(t.Context(), other)
	assert.ErrorContains(t, err, "not a copy")
	assert.Equal(t, before, testdir.Hash(t, other), "nothing changed")

	foreign := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("mine"), 0o640))
	before = testdir.Hash(t, foreign)
	_, err = s.Backup(t.Context(), foreign)
	assert.ErrorContains(t, err, "no store")
	assert.Equal(t, before, testdir.Hash(t, foreign), "nothing changed")

	_, err = s.Backup(t.Context(), src)
	assert.ErrorContains(t, err, "another directory")

	// A follower backs up what the writer acknowledged.
	f, err := store.Follow(src, nil)
	require.NoError(t, err)
	defer f.Close()
	fdst := filepath.Join(t.TempDir(), "from-follower")
	rep, err = f.Backup(t.Context(), fdst)
	require.NoError(t, err)
	assert.Equal(t, uint64(60), rep.Head)
	requireCopyOf(t, fdst, readAll(t, s, dcb.All(), store.ReadOptions{}), 60)
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		fi, err := e.Info()
		require.NoError(t, err)
		n += fi.Size()
	}
	return n
}
