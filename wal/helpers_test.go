package wal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// genRecord returns the record that starts at pos. Its size and content are
// a function of pos alone, so the whole log is determined by how many records
// it holds, whatever the batching, and a reader can check any record it reads.
// It is as a decoding returns it: each event carries its timestamp (the
// record's, or for some an earlier one of their own), some carry an ID.
func genRecord(pos uint64) Record {
	events := make([]dcb.Event, (pos/2)%3+1)
	for i := range events {
		p := pos + uint64(i)
		e := dcb.Event{
			Type:      fmt.Sprintf("E%d", p%5),
			Tags:      []string{fmt.Sprintf("p:%d", p), "all"},
			Data:      json.RawMessage(fmt.Sprintf(`{"p":%d,"pad":%q}`, p, strings.Repeat("x", int(p%37)))),
			Timestamp: time.Unix(1700000000, int64(pos)).UTC(),
		}
		if p%3 == 0 {
			e.Timestamp = time.Unix(1600000000, int64(p)).UTC()
		}
		if p%5 == 0 {
			e.ID = fmt.Sprintf("id-%d", p)
		}
		if p%4 == 0 {
			e.Metadata = map[string]string{"k": strconv.FormatUint(p, 10)}
		}
		if p%7 == 0 {
			e.Tags, e.Data = nil, nil
		}
		events[i] = e
	}
	return Record{FirstPosition: pos, Events: events}
}

// genChain returns the n records that follow position after.
func genChain(after uint64, n int) []Record {
	recs := make([]Record, 0, n)
	next := after + 1
	for range n {
		r := genRecord(next)
		recs = append(recs, r)
		next = r.LastPosition() + 1
	}
	return recs
}

func lastPos(recs []Record) uint64 {
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].LastPosition()
}

// appendN appends n generated records to l in batches of 1 to 5 records and
// returns them.
func appendN(t testing.TB, l *Log, n int, rng *rand.Rand) []Record {
	t.Helper()
	recs := genChain(l.LastPosition(), n)
	for rest := recs; len(rest) > 0; {
		k := min(len(rest), 1+rng.IntN(5))
		require.NoError(t, l.Append(rest[:k]))
		rest = rest[k:]
	}
	return recs
}

// requireSameRecord is requireRecordEqual made cheap for the many reads of
// the log tests: the encoding is canonical, so equal frames mean equal
// records. On a mismatch it falls back to the full comparison for a diff.
func requireSameRecord(t testing.TB, want, got Record) {
	t.Helper()
	w, err := AppendFrame(nil, want)
	require.NoError(t, err)
	g, err := AppendFrame(nil, got)
	require.NoError(t, err)
	if !bytes.Equal(w, g) {
		requireRecordEqual(t, want, got)
	}
	for i, e := range got.Events {
		require.Equal(t, time.UTC, e.Timestamp.Location(), "event %d", i)
	}
}

func openLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, torn, err := Open(dir, opts)
	require.NoError(t, err)
	require.Nil(t, torn)
	return l
}

// checkLog verifies that l holds exactly want: LastPosition, every position
// via ReadRecord and via Readers reading in order and in random order, and
// ErrNotFound around it.
func checkLog(t testing.TB, l *Log, want []Record) {
	t.Helper()
	last := lastPos(want)
	require.Equal(t, last, l.LastPosition())
	if len(want) > 0 {
		require.Equal(t, uint64(1), want[0].FirstPosition, "test bug: want must start at position 1")
	}
	recAt := make([]int, last+1) // position -> index in want
	for i, r := range want {
		for p := r.FirstPosition; p <= r.LastPosition(); p++ {
			recAt[p] = i
		}
	}
	for p := uint64(1); p <= last; p++ {
		got, err := l.ReadRecord(p)
		require.NoError(t, err, "ReadRecord(%d)", p)
		requireSameRecord(t, want[recAt[p]], got)
	}
	rd := l.NewReader()
	for p := uint64(1); p <= last; p++ {
		got, err := rd.Record(p)
		require.NoError(t, err, "Reader in order, position %d", p)
		requireSameRecord(t, want[recAt[p]], got)
	}
	perm := rand.New(rand.NewPCG(last, 7)).Perm(int(last))
	rd = l.NewReader()
	for _, i := range perm {
		p := uint64(i) + 1
		got, err := rd.Record(p)
		require.NoError(t, err, "Reader in random order, position %d", p)
		requireSameRecord(t, want[recAt[p]], got)
	}
	for _, p := range []uint64{0, last + 1, last + 1000, 1<<64 - 1} {
		_, err := l.ReadRecord(p)
		require.ErrorIs(t, err, ErrNotFound, "ReadRecord(%d)", p)
		_, err = rd.Record(p)
		require.ErrorIs(t, err, ErrNotFound, "Reader.Record(%d)", p)
	}
}

// segmentFiles returns the names of the segment files in dir, in order.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		if len(e.Name()) == segmentNameLen && strings.Trim(e.Name(), "0123456789") == "" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// entry is one tidwall entry of a segment file: its uvarint length at off,
// its frame at off+prefix, size bytes in all.
type entry struct {
	off, prefix, size int64
}

func (e entry) end() int64 { return e.off + e.size }

// segmentEntries parses the entries of a segment file, which must be intact.
func segmentEntries(t testing.TB, path string) []entry {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var ents []entry
	for off := 0; off < len(data); {
		n, un := binary.Uvarint(data[off:])
		require.Positive(t, un, "%s: bad entry length at %d", path, off)
		require.LessOrEqual(t, off+un+int(n), len(data), "%s: entry at %d runs past the end", path, off)
		_, err := DecodeFrame(data[off+un : off+un+int(n)])
		require.NoError(t, err, "%s: entry at %d", path, off)
		ents = append(ents, entry{off: int64(off), prefix: int64(un), size: int64(un) + int64(n)})
		off += un + int(n)
	}
	return ents
}

// snapshot returns the names and contents of every file in dir.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := make(map[string]string, len(ents))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = string(b)
	}
	return files
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, b, 0o640))
}

// flipBit flips one bit of the byte at off in the file at path.
func flipBit(t testing.TB, path string, off int64) {
	t.Helper()
	b := readFile(t, path)
	require.Less(t, off, int64(len(b)))
	b[off] ^= 0x20
	writeFile(t, path, b)
}

// brokenCopies returns the .broken copies in dir.
func brokenCopies(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".broken") {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestHelpersChain(t *testing.T) {
	// The generator itself: gap-free, and records of 1 to 3 events.
	recs := genChain(0, 100)
	next := uint64(1)
	sizes := map[int]bool{}
	for _, r := range recs {
		assert.Equal(t, next, r.FirstPosition)
		sizes[len(r.Events)] = true
		next = r.LastPosition() + 1
	}
	assert.Equal(t, map[int]bool{1: true, 2: true, 3: true}, sizes)
	assert.Equal(t, recs[50:], genChain(recs[49].LastPosition(), 50))
	assert.True(t, slices.Equal(segmentFiles(t, t.TempDir()), nil))
}
