package store

import (
	"context"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/require"
)

func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	require.NoError(t, err)
	ctx := context.Background()
	last, err := s.Append(ctx, []dcb.Event{{Type: "A", Tags: []string{"x", "y"}}, {Type: "B", Tags: []string{"x"}}}, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(2), last)
	_, err = s.Append(ctx, []dcb.Event{{Type: "C"}}, &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"x"}}}}, After: 1})
	require.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
	var got []uint64
	for e, err := range s.Read(ctx, dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"x"}}}}, ReadOptions{}) {
		require.NoError(t, err)
		got = append(got, e.Position)
	}
	require.Equal(t, []uint64{1, 2}, got)
	_, err = Open(dir, nil)
	require.ErrorIs(t, err, ErrLocked)
	require.NoError(t, s.Close())
	s, err = Open(dir, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(2), s.Head())
	require.NoError(t, s.Close())
}
