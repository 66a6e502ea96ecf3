package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lostSource makes a store in dir of 12 events with lost positions 4
// (known: type T1, its tags), 5 and 9 (unknown).
func lostSource(t *testing.T, dir string) {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	ctx := context.Background()
	for i := 1; i <= 12; i++ {
		var err error
		switch i {
		case 4:
			_, err = s.AppendLost(ctx, 3, []dcb.Event{{Type: "T1", Tags: []string{"k:3", "all"}}, {}}, "")
		case 5:
		case 9:
			_, err = s.AppendLost(ctx, 8, []dcb.Event{{}}, "")
		default:
			_, err = s.Append(ctx, []dcb.Event{tailEvent(i)}, nil)
		}
		require.NoError(t, err)
	}
	closeProjected(t, s)
}

// TestLostLines: possum read and tail print lost positions as the marker
// lines of their event files; possum append copies them as lost positions
// (AppendLost), so that read A | append B gives B the same bytes, the same
// positions and a LOST file listing them; run again, it writes nothing; a
// marker line with anything but a type and tags is refused.
func TestLostLines(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	lostSource(t, src)
	ndjson := possum(t, "", "read", src)
	require.Equal(t, 0, ndjson.code, ndjson)
	lines := strings.Split(strings.TrimSpace(ndjson.stdout), "\n")
	require.Len(t, lines, 12)
	assert.Equal(t, `{"position":4,"lost":true,"type":"T1","tags":["k:3","all"]}`, lines[3])
	assert.Equal(t, `{"position":5,"lost":true}`, lines[4])
	assert.Equal(t, `{"position":9,"lost":true}`, lines[8])
	for _, pos := range []uint64{4, 5, 9} {
		b, err := os.ReadFile(storedir.EventPath(src, pos))
		require.NoError(t, err)
		assert.Equal(t, lines[pos-1]+"\n", string(b), "read prints the event file")
	}
	tail := possum(t, "", "tail", src, "--type", "nothing")
	require.Equal(t, 0, tail.code, tail)
	assert.Equal(t, lines[4]+"\n"+lines[8]+"\n", tail.stdout, "unknown markers in every query's range")
	table := possum(t, "", "read", src, "--table", "--from", "4", "--limit", "2")
	require.Equal(t, 0, table.code, table)
	assert.Regexp(t, `(?m)^4 +LOST +T1 +k:3 all +\(lost: its event is gone\)`, table.stdout)
	assert.Regexp(t, `(?m)^5 +LOST +\(unknown\) +\(lost`, table.stdout)

	dst := filepath.Join(base, "dst")
	r := possum(t, ndjson.stdout, "append", dst, "--batch", "4")
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "appended 12 events in 5 batches, positions 1..12")
	assert.Contains(t, r.stdout, "3 positions of them lost (markers that keep the positions their source lost; recorded in LOST)")
	back := possum(t, "", "read", dst)
	assert.Equal(t, ndjson.stdout, back.stdout, "the copy reads as the original, byte for byte")
	losses, err := storedir.ReadLosses(dst)
	require.NoError(t, err)
	assert.Equal(t, []storedir.Range{{From: 4, To: 5}, {From: 9, To: 9}}, storedir.LostRanges(losses))

	before := testdir.Hash(t, filepath.Join(dst, "wal"))
	r = possum(t, ndjson.stdout, "append", dst, "--batch", "4")
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "12 events the store held already")
	assert.Equal(t, before, testdir.Hash(t, filepath.Join(dst, "wal")), "nothing written")

	for i, bad := range []string{
		`{"lost":true,"type":"A","data":{"a":1}}`,
		`{"lost":true,"tags":["t"]}`,
		`{"lost":true,"type":"A","timestamp":"2026-01-01T00:00:00Z"}`,
	} {
		dir := filepath.Join(base, fmt.Sprint("bad", i))
		r := possum(t, `{"type":"A"}`+"\n"+bad+"\n", "append", dir)
		assert.Equal(t, 1, r.code, r)
		assert.Contains(t, r.stderr, "line 2: the lost marker carries", bad)
	}
}

// TestLostInStatsAndVerify: possum stats lists the lost positions LOST
// records, and counts no marker as an event of its type; possum verify
// lists the markers it read and says LOST agrees.
func TestLostInStatsAndVerify(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	lostSource(t, dir)
	st := statsJSON(t, dir)
	assert.Equal(t, []storedir.Range{{From: 4, To: 5}, {From: 9, To: 9}}, st.Lost)
	assert.Equal(t, uint64(3), st.LostEvents)
	require.Len(t, st.Losses, 2)
	assert.Contains(t, st.Losses[0].Why, "AppendLost")
	n := 0
	for _, c := range st.Types {
		assert.NotEmpty(t, c.Name)
		n += c.Events
	}
	assert.Equal(t, 9, n, "the events, not the markers")
	r := possum(t, "", "stats", dir)
	require.Equal(t, 0, r.code, r)
	assert.Contains(t, r.stdout, "lost positions (3, recorded in LOST): 4..5, 9\n")

	v := possum(t, "", "verify", dir)
	require.Equal(t, 0, v.code, v)
	assert.Contains(t, v.stdout, "lost positions in the store: 4..5, 9 (3 positions; LOST lists them)")

	healthy := filepath.Join(t.TempDir(), "healthy")
	readStore(t, healthy, 3)
	assert.Empty(t, statsJSON(t, healthy).Lost)
	assert.NotNil(t, statsJSON(t, healthy).Lost, "[] in JSON")
	r = possum(t, "", "stats", healthy)
	assert.Contains(t, r.stdout, "lost positions: none\n")
}
