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
		require.NoError(t, l.Append([]Record{{FirstPosition: next, Timestamp: time.Now(), Events: []dcb.Event{{Type: "T", Tags: []string{"x"}}, {Type: "U"}}}}))
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
