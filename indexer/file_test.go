package indexer_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/indexer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFileReader: an index file read entry by entry gives what ReadFile
// gives, stops at a torn entry (Valid says where the whole ones end) and
// at an entry out of order (Err wraps ErrDamaged); PositionsIn gives the
// positions within ranges.
func TestFileReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.idx")
	var ps []uint64
	for p := uint64(3); p < 100_000; p += 7 {
		ps = append(ps, p)
	}
	b := indexer.EncodeFile("course:é", ps)
	require.NoError(t, os.WriteFile(path, append(b, 1, 2, 3), 0o640)) // and a torn entry

	r, err := indexer.OpenFile(path)
	require.NoError(t, err)
	assert.Equal(t, "course:é", r.Name())
	var got []uint64
	for p, ok := r.Next(); ok; p, ok = r.Next() {
		got = append(got, p)
	}
	require.NoError(t, r.Err())
	assert.Equal(t, ps, got)
	assert.Equal(t, int64(len(b)), r.Valid())
	require.NoError(t, r.Close())

	name, in, err := indexer.PositionsIn(path, [][2]uint64{{1, 10}, {700, 720}, {99_990, 200_000}})
	require.NoError(t, err)
	assert.Equal(t, "course:é", name)
	assert.Equal(t, []uint64{3, 10, 703, 710, 717, 99_991, 99_998}, in)

	bad := append(indexer.EncodeFile("t", []uint64{5, 9}), 4, 0, 0, 0, 0, 0, 0, 0)
	require.NoError(t, os.WriteFile(path, bad, 0o640))
	r, err = indexer.OpenFile(path)
	require.NoError(t, err)
	n := 0
	for _, ok := r.Next(); ok; _, ok = r.Next() {
		n++
	}
	assert.Equal(t, 2, n)
	assert.ErrorIs(t, r.Err(), indexer.ErrDamaged)
	require.NoError(t, r.Close())

	require.NoError(t, os.WriteFile(path, []byte("PIDX"), 0o640))
	_, err = indexer.OpenFile(path)
	assert.ErrorIs(t, err, indexer.ErrDamaged)
}
