package indexer_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// snapshotEvent is event pos of the snapshot tests: many tags with short
// lists (as order tags have), a few long ones.
func snapshotEvent(pos uint64) dcb.Event {
	return dcb.Event{
		Type: fmt.Sprintf("T%d", pos%3),
		Tags: []string{fmt.Sprintf("order:%d", pos/7), fmt.Sprintf("customer:%d", pos%11)},
	}
}

func buildIndex(t *testing.T, from, to uint64, x *indexer.Index) *indexer.Index {
	t.Helper()
	if x == nil {
		x = indexer.New()
	}
	for pos := from; pos <= to; pos++ {
		require.NoError(t, x.Add(pos, snapshotEvent(pos)))
	}
	return x
}

// TestSnapshotRoundTrip: a snapshot reads back as the index it was written
// from, and positions added to the read index afterwards (to lists that
// share the arrays they were read into) leave every other list intact.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n, more = 20_000, 3_000
	x := buildIndex(t, 1, n+5, nil) // positions beyond upTo are left out
	path := filepath.Join(dir, "snapshot")
	require.NoError(t, indexer.WriteSnapshot(vfs.OS, path, path+".tmp", x, n))

	got, upTo, err := indexer.ReadSnapshot(path)
	require.NoError(t, err)
	require.Equal(t, uint64(n), upTo)
	want := buildIndex(t, 1, n, nil)
	assert.Equal(t, want.Types(), got.Types())
	assert.Equal(t, want.Tags(), got.Tags())
	assert.Equal(t, want.TagEntries(), got.TagEntries())

	buildIndex(t, n+1, n+more, got)
	buildIndex(t, n+1, n+more, want)
	assert.Equal(t, want.Types(), got.Types())
	assert.Equal(t, want.Tags(), got.Tags())
	assert.Equal(t, uint64(n+more), got.Head())
}

// TestCheckFiles: CheckFiles names each index file missing or of the wrong
// size, and each index file nobody owns, and nothing else.
func TestCheckFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 500
	x := buildIndex(t, 1, n+3, nil) // the files hold 1..n; n+1.. are not projected
	for _, kind := range []struct {
		dir   string
		lists map[string][]uint64
	}{{storedir.TypesDir, buildIndex(t, 1, n, nil).Types()}, {storedir.TagsDir, buildIndex(t, 1, n, nil).Tags()}} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, kind.dir), 0o750))
		for name, ps := range kind.lists {
			path := filepath.Join(dir, kind.dir, storedir.IndexFileName(name))
			require.NoError(t, indexer.WriteFile(vfs.OS, path, path+".tmp", name, ps))
		}
	}
	m, err := indexer.CheckFiles(dir, x, n, true, true)
	require.NoError(t, err)
	assert.True(t, m.Empty(), "%+v", m)

	tagPath := func(tag string) string { return filepath.Join(dir, storedir.TagsDir, storedir.IndexFileName(tag)) }
	require.NoError(t, os.Remove(filepath.Join(dir, storedir.TypesDir, storedir.IndexFileName("T1"))))
	require.NoError(t, os.Truncate(tagPath("customer:3"), 24))
	f, err := os.OpenFile(tagPath("order:5"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte{1, 2, 3})
	require.NoError(t, err)
	require.NoError(t, f.Close())
	stray := tagPath("nobody")
	require.NoError(t, indexer.WriteFile(vfs.OS, stray, stray+".tmp", "nobody", []uint64{1}))
	require.NoError(t, os.WriteFile(filepath.Join(dir, storedir.TagsDir, "README"), []byte("not an index file"), 0o640))
	require.NoError(t, os.Mkdir(filepath.Join(dir, storedir.TagsDir, "sub"+storedir.IndexFileExt), 0o750))

	m, err = indexer.CheckFiles(dir, x, n, true, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"T1"}, m.Types)
	assert.Equal(t, []string{"customer:3", "order:5"}, m.Tags)
	assert.Equal(t, []string{stray}, m.Strays)
}

// TestListsWhileAdding: Types, Tags and TagEntries may run while positions
// are added (the projector checks index files while the store appends).
// Run with -race.
func TestListsWhileAdding(t *testing.T) {
	t.Parallel()
	x := indexer.New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pos := uint64(1); pos <= 5_000; pos++ {
			e := snapshotEvent(pos)
			e.Type = fmt.Sprintf("T%d", pos) // a new type and tag each time
			e.Tags = append(e.Tags, fmt.Sprintf("new:%d", pos))
			assert.NoError(t, x.Add(pos, e))
		}
	}()
	for {
		select {
		case <-done:
			assert.Len(t, x.Types(), 5_000)
			return
		default:
			x.Types()
			x.Tags()
			x.TagEntries()
		}
	}
}

// TestUnknownTypeOnDisk: the positions of lost markers of unknown type
// (type "") survive the index files (their file is ".idx") and the
// snapshot, and still match every query after Load and ReadSnapshot.
func TestUnknownTypeOnDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	x := indexer.New()
	for pos, e := range []dcb.Event{{Type: "A", Tags: []string{"t"}}, {}, {Type: "B"}, {}} {
		require.NoError(t, x.Add(uint64(pos+1), e))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, storedir.TypesDir), 0o750))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, storedir.TagsDir), 0o750))
	for name, ps := range x.Types() {
		require.NoError(t, indexer.WriteFile(vfs.OS, filepath.Join(dir, storedir.TypesDir, storedir.IndexFileName(name)), filepath.Join(dir, "tmp"), name, ps))
	}
	for name, ps := range x.Tags() {
		require.NoError(t, indexer.WriteFile(vfs.OS, filepath.Join(dir, storedir.TagsDir, storedir.IndexFileName(name)), filepath.Join(dir, "tmp"), name, ps))
	}
	assert.FileExists(t, filepath.Join(dir, storedir.TypesDir, ".idx"))
	loaded, st, err := indexer.Load(vfs.OS, dir, 4)
	require.NoError(t, err)
	assert.Empty(t, st.DamagedFiles)
	path := filepath.Join(dir, "snapshot")
	require.NoError(t, indexer.WriteSnapshot(vfs.OS, path, path+".tmp", x, 4))
	snap, _, err := indexer.ReadSnapshot(path)
	require.NoError(t, err)
	q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"t"}}}}
	for name, got := range map[string]*indexer.Index{"load": loaded, "snapshot": snap} {
		assert.Equal(t, x.Types(), got.Types(), name)
		assert.Equal(t, []uint64{1, 2, 4}, collect(got.Cursor(q, 0, maxPos, false)), name)
	}
}
