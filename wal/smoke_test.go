package wal

import (
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/require"
)

func TestSmokeRoll(t *testing.T) {
	dir := t.TempDir()
	l, torn, err := Open(dir, Options{SegmentSize: 1000})
	require.NoError(t, err)
	require.Nil(t, torn)
	pos := uint64(1)
	for i := 0; i < 200; i++ {
		var recs []Record
		for j := 0; j < 3; j++ {
			recs = append(recs, Record{FirstPosition: pos, Timestamp: time.Now(), Events: []dcb.Event{{Type: "T", Tags: []string{"a"}}, {Type: "U", Data: []byte(`{"x":1}`)}}})
			pos += 2
		}
		require.NoError(t, l.Append(recs))
	}
	for p := uint64(1); p < pos; p++ {
		r, err := l.ReadRecord(p)
		require.NoError(t, err)
		require.True(t, p >= r.FirstPosition && p <= r.LastPosition())
	}
	rd := l.NewReader()
	for p := uint64(1); p < pos; p++ {
		_, err := rd.Record(p)
		require.NoError(t, err)
	}
	require.NoError(t, l.Close())
	l, torn, err = Open(dir, Options{SegmentSize: 1000})
	require.NoError(t, err)
	require.Nil(t, torn)
	require.Equal(t, pos-1, l.LastPosition())
	require.NoError(t, l.Append([]Record{{FirstPosition: pos, Events: []dcb.Event{{Type: "x"}}}}))
	require.NoError(t, l.Close())
}
