package wal

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A follower sees what the writer acknowledged, across segment rolls, a
// writer's Close and reopen, and a store that did not exist yet.
func TestFollowerFollowsWriter(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "wal")
	f, err := OpenFollower(dir)
	require.NoError(t, err, "a log that does not exist yet")
	defer f.Close()
	last, err := f.Refresh()
	require.NoError(t, err)
	assert.Zero(t, last)

	rng := rand.New(rand.NewPCG(1, 2))
	w := openLog(t, dir, Options{SegmentSize: 4096})
	var all []Record
	for round := range 4 {
		all = append(all, appendN(t, w, 30+round*10, rng)...)
		last, err := f.Refresh()
		require.NoError(t, err)
		require.Equal(t, lastPos(all), last, "round %d", round)
		checkLog(t, f, all)
		if round == 1 {
			// The writer closes and opens again: the offsets file is
			// rewritten in place, the same.
			require.NoError(t, w.Close())
			w = openLog(t, dir, Options{SegmentSize: 4096})
		}
	}
	require.Greater(t, len(segmentFiles(t, dir)), 2)
	require.NoError(t, w.Close())
	require.ErrorContains(t, f.Append(genChain(lastPos(all), 1)), "follower")
	require.NoError(t, f.Close())
	_, err = f.Refresh()
	require.ErrorIs(t, err, ErrClosed)
}

// A partial entry at the end of the offsets file (the writer is writing it)
// is not read until it is whole.
func TestFollowerWaitsForWholeEntries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := openLog(t, dir, Options{})
	recs := appendN(t, w, 5, rand.New(rand.NewPCG(3, 4)))
	require.NoError(t, w.Close())
	path := filepath.Join(dir, offsetsName)
	whole := readFile(t, path)
	writeFile(t, path, whole[:len(whole)-offsetsEntrySize/2])

	f, err := OpenFollower(dir)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, recs[3].LastPosition(), f.LastPosition())
	writeFile(t, path, whole) // rewritten in place, as the writer does
	last, err := f.Refresh()
	require.NoError(t, err)
	assert.Equal(t, lastPos(recs), last)
	checkLog(t, f, recs)
}

// Positions a follower had read that vanish or change are an error, never
// silently other events.
func TestFollowerDetectsChangedLog(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(t *testing.T, path string, whole []byte){
		"cut short": func(t *testing.T, path string, whole []byte) {
			writeFile(t, path, whole[:len(whole)-2*offsetsEntrySize])
		},
		"the last entry rewritten in place": func(t *testing.T, path string, whole []byte) {
			writeFile(t, path, reencode(t, whole, (len(whole)-offsetsHeaderSize)/offsetsEntrySize-1))
		},
		"replaced by another file": func(t *testing.T, path string, whole []byte) {
			require.NoError(t, os.Remove(path))
			writeFile(t, path, reencode(t, whole, 0))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			w := openLog(t, dir, Options{})
			appendN(t, w, 8, rand.New(rand.NewPCG(5, 6)))
			require.NoError(t, w.Close())
			f, err := OpenFollower(dir)
			require.NoError(t, err)
			defer f.Close()
			path := filepath.Join(dir, offsetsName)
			change(t, path, readFile(t, path))
			_, err = f.Refresh()
			require.ErrorIs(t, err, ErrChanged)
		})
	}
}

// reencode returns the offsets file b with entry i's record moved one byte
// further in its segment, its checksum made good again.
func reencode(t *testing.T, b []byte, i int) []byte {
	t.Helper()
	b = append([]byte(nil), b...)
	e := b[offsetsHeaderSize+i*offsetsEntrySize:][:offsetsEntrySize]
	off := binary.LittleEndian.Uint32(e[16:]) + 1
	binary.LittleEndian.PutUint32(e[16:], off)
	binary.LittleEndian.PutUint32(e[28:], uint32(xxhash.Sum64(e[:28])))
	return b
}
