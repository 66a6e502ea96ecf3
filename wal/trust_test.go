package wal

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func appendPairs(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		next := l.LastPosition() + 1
		require.NoError(t, l.Append([]Record{{FirstPosition: next, Stamp: time.Now(), Events: []dcb.Event{{Type: "T", Tags: []string{"x"}}, {Type: "U"}}}}))
	}
}

// TestTrustPositionSkipsScan: records a checkpoint vouches for are located
// through the offsets file, not read; everything after is scanned.
func TestTrustPositionSkipsScan(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	l, _, err := Open(dir, opts)
	require.NoError(t, err)
	appendPairs(t, l, 300) // positions 1..600, several segments
	require.NoError(t, l.Close())

	for _, tc := range []struct {
		trust            uint64
		trusted, scanned int
	}{
		{0, 0, 300},
		{600, 300, 0},
		{599, 299, 1}, // a record is trusted only when wholly covered
		{400, 200, 100},
	} {
		opts.TrustPosition = tc.trust
		l, torn, err := Open(dir, opts)
		require.NoError(t, err)
		assert.Nil(t, torn)
		st := l.Stats()
		assert.Equal(t, tc.trusted, st.TrustedRecords, "trust %d", tc.trust)
		assert.Equal(t, tc.scanned, st.ScannedRecords, "trust %d", tc.trust)
		assert.Equal(t, uint64(600), l.LastPosition())
		rd := l.NewReader()
		for p := uint64(1); p <= 600; p++ {
			r, err := rd.Record(p)
			require.NoError(t, err)
			require.LessOrEqual(t, r.FirstPosition, p)
		}
		require.NoError(t, l.Close())
	}

	// A checkpoint beyond the log's end vouches for positions it lost.
	opts.TrustPosition = 10_000
	_, _, err = Open(dir, opts)
	var lost *LostError
	require.ErrorAs(t, err, &lost)
	assert.Equal(t, LostError{From: 601, To: 10_000, Last: 600, Checkpoint: 10_000, Offsets: 600}, *lost)

	// Appends after a trusted open land in the offsets file too.
	opts.TrustPosition = 600
	l, _, err = Open(dir, opts)
	require.NoError(t, err)
	appendPairs(t, l, 50)
	require.NoError(t, l.Close())
	opts.TrustPosition = 700
	l, _, err = Open(dir, opts)
	require.NoError(t, err)
	assert.Equal(t, 350, l.Stats().TrustedRecords)
	assert.Equal(t, uint64(700), l.LastPosition())
	require.NoError(t, l.Close())

	// A damaged offsets file is trusted only as far as its entries check out.
	path := filepath.Join(dir, offsetsName)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[offsetsHeaderSize+100*offsetsEntrySize+3] ^= 0xff
	require.NoError(t, os.WriteFile(path, b, 0o640))
	l, _, err = Open(dir, opts)
	require.NoError(t, err)
	assert.Equal(t, 100, l.Stats().TrustedRecords)
	assert.Equal(t, 250, l.Stats().ScannedRecords)
	require.NoError(t, l.Close())
	require.NoError(t, os.Remove(path))
	l, _, err = Open(dir, opts)
	require.NoError(t, err)
	assert.Equal(t, 0, l.Stats().TrustedRecords)
	assert.Equal(t, uint64(700), l.LastPosition())
	require.NoError(t, l.Close())
}

// wantOffsets is the offsets file of l's offset index, encoded afresh.
func wantOffsets(l *Log) []byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	b := append([]byte(offsetsMagic), 0, 0, 0, 0)
	b[4] = offsetsVersion
	for _, loc := range l.locs {
		b = appendOffsetEntry(b, loc, l.segs[loc.seg].first)
	}
	return b
}

// TestOpenRewritesOffsetsFile: whatever the offsets file held, Open leaves
// it holding exactly the offset index, writing only what differs (nothing
// on a clean reopen: not even its modification time changes), and later
// appends go after it.
func TestOpenRewritesOffsetsFile(t *testing.T) {
	t.Parallel()
	const records = 300 // positions 1..600
	entryAt := func(i int) int64 { return int64(offsetsHeaderSize + i*offsetsEntrySize) }
	cases := []struct {
		name    string
		trust   uint64
		damage  func(t *testing.T, path string)
		trusted int
	}{
		{"clean, fully trusted", 600, nil, records},
		{"clean, nothing trusted", 0, nil, 0},
		{"clean, half trusted", 300, nil, 150},
		{"deleted", 600, func(t *testing.T, path string) { require.NoError(t, os.Remove(path)) }, 0},
		{"empty", 600, func(t *testing.T, path string) { require.NoError(t, os.Truncate(path, 0)) }, 0},
		{"foreign header", 600, func(t *testing.T, path string) { flipBit(t, path, 1) }, 0},
		{"torn last entry", 600, func(t *testing.T, path string) { require.NoError(t, os.Truncate(path, entryAt(records)-5)) }, records - 1},
		{"last 40 entries lost", 600, func(t *testing.T, path string) { require.NoError(t, os.Truncate(path, entryAt(records-40))) }, records - 40},
		{"entry 100 damaged", 600, func(t *testing.T, path string) { flipBit(t, path, entryAt(100)+17) }, 100},
		{"garbage after the entries", 600, func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write(make([]byte, 3*offsetsEntrySize+7))
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, records},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := Options{SegmentSize: 4096}
			l, _, err := Open(dir, opts)
			require.NoError(t, err)
			appendPairs(t, l, records)
			require.NoError(t, l.Close())
			path := filepath.Join(dir, offsetsName)
			clean := readFile(t, path)
			old := time.Unix(1, 0)
			require.NoError(t, os.Chtimes(path, old, old))
			if c.damage != nil {
				c.damage(t, path)
			}

			opts.TrustPosition = c.trust
			l, _, err = Open(dir, opts)
			require.NoError(t, err)
			assert.Equal(t, c.trusted, l.Stats().TrustedRecords)
			assert.Equal(t, uint64(600), l.LastPosition())
			assert.Equal(t, clean, wantOffsets(l), "the offset index is the log's")
			assert.Equal(t, wantOffsets(l), readFile(t, path), "the offsets file holds the offset index")
			if c.damage == nil {
				st, err := os.Stat(path)
				require.NoError(t, err)
				assert.True(t, st.ModTime().Equal(old), "a clean reopen writes nothing to the offsets file")
			}
			appendPairs(t, l, 10)
			assert.Equal(t, wantOffsets(l), readFile(t, path), "appends after Open")
			require.NoError(t, l.Close())

			opts.TrustPosition = 620
			l, _, err = Open(dir, opts)
			require.NoError(t, err)
			assert.Equal(t, records+10, l.Stats().TrustedRecords)
			require.NoError(t, l.Close())
		})
	}
}
