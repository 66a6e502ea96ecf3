package wal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tidwall "github.com/tidwall/wal"
)

func TestOpenEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "wal") // created by Open
	l := openLog(t, dir, Options{})
	assert.Equal(t, uint64(0), l.LastPosition())
	checkLog(t, l, nil)
	require.NoError(t, l.Close())
	assert.Equal(t, []string{segmentName(1)}, segmentFiles(t, dir))

	l = openLog(t, dir, Options{})
	checkLog(t, l, nil)
	want := appendN(t, l, 3, rand.New(rand.NewPCG(1, 1)))
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

func TestOpenBadOptions(t *testing.T) {
	for _, size := range []int{-1, MaxSegmentSize + 1} {
		l, torn, err := Open(t.TempDir(), Options{SegmentSize: size})
		assert.Error(t, err, "segment size %d", size)
		assert.Nil(t, l)
		assert.Nil(t, torn)
	}
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, []byte("x"))
	_, _, err := Open(file, Options{})
	assert.Error(t, err)
}

func TestAppendReadAcrossSegmentRolls(t *testing.T) {
	for _, size := range []int{1, 300, 1000, 64 << 10, 0} {
		t.Run(fmt.Sprintf("segment size %d", size), func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(uint64(size), 1))
			// The default segment size gets many records, the size of 1 a
			// segment per record: no fsync per append there, for speed.
			opts := Options{SegmentSize: size, NoSync: size <= 1}
			l := openLog(t, dir, opts)
			n := 200
			switch size {
			case 0:
				n = 800 // the read-ahead grows over several chunks
			case 1:
				n = 100
			}
			want := appendN(t, l, n, rng)
			checkLog(t, l, want) // reads through the index built by Append
			if size != 0 && size < 64<<10 {
				assert.Greater(t, len(segmentFiles(t, dir)), 10)
			}
			require.NoError(t, l.Close())

			l = openLog(t, dir, opts)
			checkLog(t, l, want) // reads through the index built by the scan
			want = append(want, appendN(t, l, 50, rng)...)
			checkLog(t, l, want)
			require.NoError(t, l.Close())

			// Every segment file starts at the entry its name says, and the
			// entries are the records in order.
			var frames int64
			for _, name := range segmentFiles(t, dir) {
				var first uint64
				_, err := fmt.Sscan(strings.TrimLeft(name, "0"), &first)
				require.NoError(t, err)
				assert.Equal(t, frames+1, int64(first), "segment %s", name)
				frames += int64(len(segmentEntries(t, filepath.Join(dir, name))))
			}
			assert.Equal(t, int64(len(want)), frames)

			// Reopening with another segment size goes on where the log ends.
			for _, other := range []int{100, 1 << 20} {
				l = openLog(t, dir, Options{SegmentSize: other})
				want = append(want, appendN(t, l, 20, rng)...)
				checkLog(t, l, want)
				require.NoError(t, l.Close())
			}
			l = openLog(t, dir, opts)
			checkLog(t, l, want)
			require.NoError(t, l.Close())
		})
	}
}

func TestAppendEmptyBatch(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentSize: 1000})
	want := appendN(t, l, 20, rand.New(rand.NewPCG(2, 2)))
	before := snapshot(t, dir)
	require.NoError(t, l.Append(nil))
	require.NoError(t, l.Append([]Record{}))
	assert.Equal(t, before, snapshot(t, dir))
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

func TestAppendRejected(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 3))
	l := openLog(t, dir, Options{SegmentSize: 1000})
	want := appendN(t, l, 30, rng)
	next := lastPos(want) + 1
	r := genRecord(next)
	after := r.LastPosition() + 1
	tests := []struct {
		name string
		recs []Record
	}{
		{"position of the last event", []Record{genRecord(next - 1)}},
		{"position 1 again", []Record{genRecord(1)}},
		{"position 0", []Record{{FirstPosition: 0, Stamp: ts, Events: []dcb.Event{{Type: "A"}}}}},
		{"gap", []Record{genRecord(next + 1)}},
		{"no events", []Record{{FirstPosition: next, Stamp: ts}}},
		{"second record overlaps", []Record{r, genRecord(r.LastPosition())}},
		{"second record leaves a gap", []Record{r, genRecord(after + 1)}},
		{"second record has no events", []Record{r, {FirstPosition: after, Stamp: ts}}},
		{"third record out of order", []Record{r, genRecord(after), r}},
	}
	before := snapshot(t, dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := l.Append(tt.recs)
			require.Error(t, err)
			assert.NotErrorIs(t, err, ErrPoisoned)
			assert.Equal(t, lastPos(want), l.LastPosition())
			assert.Equal(t, before, snapshot(t, dir), "nothing written")
		})
	}
	// The log is still usable.
	want = append(want, appendN(t, l, 10, rng)...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
	l = openLog(t, dir, Options{SegmentSize: 1000})
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

func TestAppendTooLarge(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(4, 4))
	l := openLog(t, dir, Options{})
	want := appendN(t, l, 5, rng)
	before := snapshot(t, dir)
	ok := genRecord(lastPos(want) + 1)
	data := bytes.Repeat([]byte("1"), MaxRecordSize)
	big := Record{FirstPosition: ok.LastPosition() + 1, Stamp: ts, Events: []dcb.Event{{Type: "Big", Data: data}}}
	err := l.Append([]Record{ok, big})
	require.ErrorIs(t, err, ErrRecordTooLarge)
	assert.NotErrorIs(t, err, ErrPoisoned)
	assert.Equal(t, before, snapshot(t, dir), "nothing written, not even the first record")
	assert.Equal(t, lastPos(want), l.LastPosition())
	want = append(want, appendN(t, l, 5, rng)...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

func TestClosedLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	want := appendN(t, l, 5, rand.New(rand.NewPCG(5, 5)))
	rd := l.NewReader()
	_, err := rd.Record(1)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "closing twice")

	assert.ErrorIs(t, l.Append(genChain(lastPos(want), 1)), ErrClosed)
	_, err = l.ReadRecord(2)
	assert.Error(t, err)
	_, err = l.NewReader().Record(lastPos(want))
	assert.Error(t, err)
	_, err = rd.Record(lastPos(want))
	assert.Error(t, err)
}

// damageOpts are the options of the logs the damage tests write.
var damageOpts = Options{SegmentSize: 1000, NoSync: true}

// writeDamageLog writes a log of at least 4 segments whose last segment
// holds at least minLast and at most maxLast records, closes it, and returns
// its records.
func writeDamageLog(t *testing.T, dir string, minLast, maxLast int) []Record {
	t.Helper()
	l := openLog(t, dir, damageOpts)
	rng := rand.New(rand.NewPCG(6, 6))
	want := appendN(t, l, 40, rng)
	for {
		segs := segmentFiles(t, dir)
		n := len(segmentEntries(t, filepath.Join(dir, segs[len(segs)-1])))
		if len(segs) >= 4 && n >= minLast && n <= maxLast {
			break
		}
		want = append(want, appendN(t, l, 1, rng)...)
		require.Less(t, len(want), 1000, "test bug: no suitable log")
	}
	require.NoError(t, l.Close())
	return want
}

// unacknowledge drops the offsets file's entries of the last n records, as
// if their appends had died before being acknowledged: a real torn write
// never gets its entry, which is written after the fsync.
func unacknowledge(t *testing.T, dir string, n int) {
	t.Helper()
	path := filepath.Join(dir, offsetsName)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.Size(), int64(offsetsHeaderSize+n*offsetsEntrySize))
	truncate(t, path, st.Size()-int64(n*offsetsEntrySize))
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	require.NoError(t, os.Truncate(path, size))
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	writeFile(t, path, append(readFile(t, path), b...))
}

func TestTornTailRepaired(t *testing.T) {
	// damage damages the last segment, at path, whose entries are ents, and
	// returns the offset the repair must cut it to and how many records
	// (at the end) that loses.
	type damageFunc func(t *testing.T, path string, ents []entry) (offset int64, lost int)
	cut := func(n int64) damageFunc {
		return func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			require.Less(t, n, last.size)
			truncate(t, path, last.end()-n)
			return last.off, 1
		}
	}
	tests := []struct {
		name   string
		damage damageFunc
	}{
		{"cut by 1 byte", cut(1)},
		{"cut by 2 bytes", cut(2)},
		{"cut by 5 bytes", cut(5)},
		{"cut by 13 bytes", cut(13)},
		{"cut by half the last record", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			truncate(t, path, last.off+last.size/2)
			return last.off, 1
		}},
		{"cut to the first byte of the last record", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			truncate(t, path, last.off+1)
			return last.off, 1
		}},
		{"cut to the last record's frame header", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			truncate(t, path, last.off+last.prefix+frameHeaderSize)
			return last.off, 1
		}},
		{"zero-filled tail", func(t *testing.T, path string, ents []entry) (int64, int) {
			appendBytes(t, path, make([]byte, 4096))
			return ents[len(ents)-1].end(), 0
		}},
		{"one zero byte", func(t *testing.T, path string, ents []entry) (int64, int) {
			appendBytes(t, path, []byte{0})
			return ents[len(ents)-1].end(), 0
		}},
		{"garbage tail", func(t *testing.T, path string, ents []entry) (int64, int) {
			garbage := make([]byte, 3000)
			rng := rand.New(rand.NewPCG(7, 7))
			for i := range garbage {
				garbage[i] = byte(rng.Uint32())
			}
			appendBytes(t, path, garbage)
			return ents[len(ents)-1].end(), 0
		}},
		{"garbage that looks like a frame", func(t *testing.T, path string, ents []entry) (int64, int) {
			appendBytes(t, path, []byte{40, FormatVersion, 27, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
			return ents[len(ents)-1].end(), 0
		}},
		{"last record zeroed", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			b := readFile(t, path)
			clear(b[last.off:])
			writeFile(t, path, b)
			return last.off, 1
		}},
		{"bit flip in the last record's payload", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			flipBit(t, path, last.off+last.prefix+frameHeaderSize+(last.size-last.prefix-frameHeaderSize)/2)
			return last.off, 1
		}},
		{"bit flip in the last record's checksum", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			flipBit(t, path, last.off+last.prefix+7)
			return last.off, 1
		}},
		{"bit flip in the last record's version", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			flipBit(t, path, last.off+last.prefix)
			return last.off, 1
		}},
		{"bit flip in the last record's length prefix", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			flipBit(t, path, last.off)
			return last.off, 1
		}},
		{"last byte flipped", func(t *testing.T, path string, ents []entry) (int64, int) {
			last := ents[len(ents)-1]
			flipBit(t, path, last.end()-1)
			return last.off, 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			want := writeDamageLog(t, dir, 3, 1000)
			segs := segmentFiles(t, dir)
			name := segs[len(segs)-1]
			path := filepath.Join(dir, name)
			offset, lost := tt.damage(t, path, segmentEntries(t, path))
			unacknowledge(t, dir, lost)
			damaged := readFile(t, path)
			before := snapshot(t, dir)

			l, torn, err := Open(dir, damageOpts)
			require.NoError(t, err)
			require.NotNil(t, torn)
			assert.Equal(t, name, torn.Segment)
			assert.Equal(t, offset, torn.Offset)
			assert.Equal(t, int64(len(damaged))-offset, torn.Dropped)
			assert.NotEmpty(t, torn.Reason)
			assert.Equal(t, dir, filepath.Dir(torn.Copy))
			assert.True(t, strings.HasPrefix(filepath.Base(torn.Copy), name+".broken"), "copy %s", torn.Copy)
			assert.Equal(t, damaged, readFile(t, torn.Copy), "the copy holds the damaged segment")
			assert.Equal(t, damaged[:offset], readFile(t, path), "the segment is cut back")
			after := snapshot(t, dir)
			delete(before, name)
			delete(after, name)
			delete(after, filepath.Base(torn.Copy))
			delete(before, offsetsName) // derived data, rewritten by every Open
			delete(after, offsetsName)
			assert.Equal(t, before, after, "no other file is touched")

			want = want[:len(want)-lost]
			checkLog(t, l, want)
			want = append(want, appendN(t, l, 10, rand.New(rand.NewPCG(8, 8)))...)
			checkLog(t, l, want)
			require.NoError(t, l.Close())

			l = openLog(t, dir, damageOpts) // no torn tail this time
			checkLog(t, l, want)
			require.NoError(t, l.Close())
			assert.Len(t, brokenCopies(t, dir), 1)
		})
	}
}

func TestTornTailEmptiesLastSegment(t *testing.T) {
	dir := t.TempDir()
	want := writeDamageLog(t, dir, 1, 1)
	segs := segmentFiles(t, dir)
	name := segs[len(segs)-1]
	path := filepath.Join(dir, name)
	ents := segmentEntries(t, path)
	require.Len(t, ents, 1)
	truncate(t, path, ents[0].size-5)
	unacknowledge(t, dir, 1)

	l, torn, err := Open(dir, damageOpts)
	require.NoError(t, err)
	require.NotNil(t, torn)
	assert.Equal(t, name, torn.Segment)
	assert.Equal(t, int64(0), torn.Offset)
	assert.Equal(t, ents[0].size-5, torn.Dropped)
	want = want[:len(want)-1]
	checkLog(t, l, want)
	want = append(want, appendN(t, l, 10, rand.New(rand.NewPCG(9, 9)))...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
	assert.Equal(t, segs, segmentFiles(t, dir)[:len(segs)], "the emptied segment is written again")
	l = openLog(t, dir, damageOpts)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

func TestCorruptionRefused(t *testing.T) {
	// damage damages the log in dir, whose segment files are segs, and
	// returns the segment and offset the error must name.
	type damageFunc func(t *testing.T, dir string, segs []string) (segment string, offset int64)
	flipIn := func(seg func(segs []string) string, ent func(ents []entry) entry) damageFunc {
		return func(t *testing.T, dir string, segs []string) (string, int64) {
			name := seg(segs)
			path := filepath.Join(dir, name)
			e := ent(segmentEntries(t, path))
			flipBit(t, path, e.off+e.prefix+frameHeaderSize+(e.size-e.prefix-frameHeaderSize)/2)
			return name, e.off
		}
	}
	first := func(segs []string) string { return segs[0] }
	second := func(segs []string) string { return segs[1] }
	beforeLast := func(segs []string) string { return segs[len(segs)-2] }
	last := func(segs []string) string { return segs[len(segs)-1] }
	firstEntry := func(ents []entry) entry { return ents[0] }
	middleEntry := func(ents []entry) entry { return ents[len(ents)/2] }
	lastEntry := func(ents []entry) entry { return ents[len(ents)-1] }

	tests := []struct {
		name   string
		damage damageFunc
	}{
		{"bit flip in the first record", flipIn(first, firstEntry)},
		{"bit flip in a middle record of an earlier segment", flipIn(second, middleEntry)},
		{"bit flip in the last record of an earlier segment", flipIn(beforeLast, lastEntry)},
		{"bit flip in the first record of the last segment", flipIn(last, firstEntry)},
		{"bit flip in a middle record of the last segment", flipIn(last, middleEntry)},
		{"length prefix damaged in the last segment", func(t *testing.T, dir string, segs []string) (string, int64) {
			path := filepath.Join(dir, last(segs))
			e := segmentEntries(t, path)[1]
			b := readFile(t, path)
			b[e.off] = 5 // a 5-byte frame: shorter than its header
			writeFile(t, path, b)
			return last(segs), e.off
		}},
		{"earlier segment cut short", func(t *testing.T, dir string, segs []string) (string, int64) {
			path := filepath.Join(dir, segs[1])
			ents := segmentEntries(t, path)
			truncate(t, path, ents[len(ents)-1].end()-5)
			return segs[1], ents[len(ents)-1].off
		}},
		{"zeros after an earlier segment", func(t *testing.T, dir string, segs []string) (string, int64) {
			path := filepath.Join(dir, segs[1])
			ents := segmentEntries(t, path)
			appendBytes(t, path, make([]byte, 100))
			return segs[1], ents[len(ents)-1].end()
		}},
		{"last record repeated", func(t *testing.T, dir string, segs []string) (string, int64) {
			path := filepath.Join(dir, last(segs))
			ents := segmentEntries(t, path)
			b := readFile(t, path)
			e := ents[len(ents)-1]
			writeFile(t, path, append(b, b[e.off:e.end()]...))
			return last(segs), e.end()
		}},
		{"records swapped", func(t *testing.T, dir string, segs []string) (string, int64) {
			path := filepath.Join(dir, last(segs))
			ents := segmentEntries(t, path)
			b := readFile(t, path)
			e0, e1 := ents[0], ents[1]
			var swapped []byte
			swapped = append(swapped, b[e1.off:e1.end()]...)
			swapped = append(swapped, b[e0.off:e0.end()]...)
			swapped = append(swapped, b[e1.end():]...)
			writeFile(t, path, swapped)
			return last(segs), 0
		}},
		{"record of an earlier segment copied over the last one", func(t *testing.T, dir string, segs []string) (string, int64) {
			src := segmentEntries(t, filepath.Join(dir, segs[0]))[0]
			path := filepath.Join(dir, last(segs))
			ents := segmentEntries(t, path)
			b := readFile(t, path)
			a := readFile(t, filepath.Join(dir, segs[0]))
			writeFile(t, path, append(b[:ents[len(ents)-1].off:ents[len(ents)-1].off], a[src.off:src.end()]...))
			return last(segs), ents[len(ents)-1].off
		}},
		{"middle segment deleted", func(t *testing.T, dir string, segs []string) (string, int64) {
			require.NoError(t, os.Remove(filepath.Join(dir, segs[2])))
			return segs[3], 0
		}},
		{"first segment deleted", func(t *testing.T, dir string, segs []string) (string, int64) {
			require.NoError(t, os.Remove(filepath.Join(dir, segs[0])))
			return segs[1], 0
		}},
		{"leftover START marker", func(t *testing.T, dir string, segs []string) (string, int64) {
			name := segs[2] + ".START"
			writeFile(t, filepath.Join(dir, name), readFile(t, filepath.Join(dir, segs[2])))
			return name, 0
		}},
		{"leftover END marker", func(t *testing.T, dir string, segs []string) (string, int64) {
			name := segs[1] + ".END"
			writeFile(t, filepath.Join(dir, name), readFile(t, filepath.Join(dir, segs[1])))
			return name, 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeDamageLog(t, dir, 3, 1000)
			segs := segmentFiles(t, dir)
			require.GreaterOrEqual(t, len(segmentEntries(t, filepath.Join(dir, segs[1]))), 3)
			segment, offset := tt.damage(t, dir, segs)
			before := snapshot(t, dir)

			for range 2 { // refusing changes nothing, so it refuses again
				l, torn, err := Open(dir, damageOpts)
				require.Error(t, err)
				assert.Nil(t, l)
				assert.Nil(t, torn)
				var ce *CorruptionError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, segment, ce.Segment)
				assert.Equal(t, offset, ce.Offset)
				assert.NotEmpty(t, ce.Reason)
				assert.ErrorIs(t, err, ErrCorrupt)
				assert.Contains(t, err.Error(), segment)
				assert.Equal(t, before, snapshot(t, dir), "the files are left unchanged")
			}
		})
	}
}

// TestDamageBeforeLargeRecordRefused: damage in the middle of the last
// segment followed by a valid record is refused whatever the size of that
// record. Records of 32 KiB and more have a length prefix of 3 bytes or more,
// which the search for a valid entry after the damage once skipped, taking
// the damage for a torn tail and cutting the valid record off.
func TestDamageBeforeLargeRecordRefused(t *testing.T) {
	for _, size := range []int{100, 10 << 10, 20 << 10, 40 << 10, 3 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, Options{NoSync: true})
			want := genChain(0, 3)
			big := Record{FirstPosition: lastPos(want) + 1, Stamp: ts, Events: []dcb.Event{
				{Type: "Big", Data: []byte(`"` + strings.Repeat("b", size) + `"`)},
			}}
			want = append(want, big)
			require.NoError(t, l.Append(want))
			require.NoError(t, l.Close())
			name := segmentName(1)
			path := filepath.Join(dir, name)
			ents := segmentEntries(t, path)
			require.Len(t, ents, 4)
			original := readFile(t, path)

			flipBit(t, path, ents[1].off+ents[1].prefix+frameHeaderSize+2)
			before := snapshot(t, dir)
			_, _, err := Open(dir, Options{})
			var ce *CorruptionError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, name, ce.Segment)
			assert.Equal(t, ents[1].off, ce.Offset)
			assert.Equal(t, before, snapshot(t, dir))

			// The same large record torn, never acknowledged, is a torn tail.
			writeFile(t, path, original[:len(original)-1])
			unacknowledge(t, dir, 1)
			l, torn, err := Open(dir, Options{})
			require.NoError(t, err)
			require.NotNil(t, torn)
			assert.Equal(t, ents[3].off, torn.Offset)
			checkLog(t, l, want[:3])
			require.NoError(t, l.Close())
		})
	}
}

func TestCorruptRecordDetectedOnRead(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentSize: 1000})
	want := appendN(t, l, 40, rand.New(rand.NewPCG(10, 10)))
	segs := segmentFiles(t, dir)
	name := segs[1]
	path := filepath.Join(dir, name)
	e := segmentEntries(t, path)[1]
	frame, err := DecodeFrame(readFile(t, path)[e.off+e.prefix : e.end()])
	require.NoError(t, err)
	flipBit(t, path, e.end()-2) // under the open log's feet

	for p := frame.FirstPosition; p <= frame.LastPosition(); p++ {
		_, err := l.ReadRecord(p)
		require.ErrorIs(t, err, ErrCorrupt)
		assert.Contains(t, err.Error(), name)
		_, err = l.NewReader().Record(p)
		require.ErrorIs(t, err, ErrCorrupt)
	}
	// An in-order Reader, reading ahead, hits it too, and gets past it.
	rd := l.NewReader()
	for _, r := range want {
		got, err := rd.Record(r.FirstPosition)
		if r.FirstPosition == frame.FirstPosition {
			require.ErrorIs(t, err, ErrCorrupt)
			continue
		}
		require.NoError(t, err)
		requireRecordEqual(t, r, got)
	}
	require.NoError(t, l.Close())

	_, _, err = Open(dir, Options{SegmentSize: 1000})
	var ce *CorruptionError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, name, ce.Segment)
	assert.Equal(t, e.off, ce.Offset)
}

// TestPoisonedByClosedTidwallLog makes tidwall's write fail by closing the
// tidwall log under the Log.
func TestPoisonedByClosedTidwallLog(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, 11))
	l := openLog(t, dir, Options{SegmentSize: 1000})
	want := appendN(t, l, 20, rng)
	require.NoError(t, l.tw.Close())

	err := l.Append(genChain(lastPos(want), 2))
	require.ErrorIs(t, err, ErrPoisoned)
	assert.ErrorIs(t, err, tidwall.ErrClosed, "the cause is kept")
	for range 3 {
		err := l.Append(genChain(lastPos(want), 1))
		require.ErrorIs(t, err, ErrPoisoned)
	}
	// Even an append that is invalid in itself reports the poisoning.
	assert.ErrorIs(t, l.Append([]Record{genRecord(1)}), ErrPoisoned)
	assert.Equal(t, lastPos(want), l.LastPosition())
	checkLog(t, l, want) // reads go on
	assert.NoError(t, l.Close(), "the failure was reported when it happened")

	l = openLog(t, dir, Options{SegmentSize: 1000})
	checkLog(t, l, want)
	want = append(want, appendN(t, l, 10, rng)...)
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

// TestPoisonedByFsyncError: the fsync after the write fails (through the
// Options.SyncFile seam), in the tail segment and in a segment a batch rolled into.
func TestPoisonedByFsyncError(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		batch int
	}{
		{"tail segment", Options{}, 2},
		{"after a segment roll", Options{SegmentSize: 1000}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(14, 14))
			injected := errors.New("injected fsync failure")
			var failing atomic.Bool
			opts := tc.opts
			opts.SyncFile = func(f *os.File) error {
				if failing.Load() {
					return injected
				}
				return platform.DataSync(f)
			}
			l := openLog(t, dir, opts)
			want := appendN(t, l, 3, rng)
			segs := len(segmentFiles(t, dir))

			failing.Store(true)
			failed := genChain(lastPos(want), tc.batch)
			err := l.Append(failed)
			failing.Store(false)
			require.ErrorIs(t, err, ErrPoisoned)
			assert.ErrorIs(t, err, injected, "the cause is kept")
			if tc.opts.SegmentSize != 0 {
				require.Greater(t, len(segmentFiles(t, dir)), segs, "test bug: the batch did not roll a segment")
			}
			for range 2 {
				assert.ErrorIs(t, l.Append(genChain(lastPos(want), 1)), ErrPoisoned)
			}
			assert.Equal(t, lastPos(want), l.LastPosition(), "the failed batch is not visible")
			checkLog(t, l, want)
			assert.NoError(t, l.Close())

			// The failed batch was written, only its fsync failed: after a
			// reopen it may be there, but wholly or not at all, after every
			// acknowledged record.
			l = openLog(t, dir, tc.opts)
			if l.LastPosition() != lastPos(want) {
				t.Logf("the unacknowledged batch (positions %d..%d) is in the reopened log", failed[0].FirstPosition, lastPos(failed))
				want = append(want, failed...)
			}
			checkLog(t, l, want)
			want = append(want, appendN(t, l, 5, rng)...)
			checkLog(t, l, want)
			require.NoError(t, l.Close())
		})
	}
}

// TestConcurrentReaders: 8 goroutines read random positions, each through
// its own Reader and through ReadRecord, and scan stretches in order, while
// one goroutine appends, rolling segments.
func TestConcurrentReaders(t *testing.T) {
	const (
		readers    = 8
		appends    = 200
		minReads   = 150
		prefilled  = 30
		maxPerCall = 4
	)
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentSize: 2000, NoSync: true})
	all := genChain(0, prefilled+appends*maxPerCall)
	recAt := map[uint64]int{}
	for i, r := range all {
		for p := r.FirstPosition; p <= r.LastPosition(); p++ {
			recAt[p] = i
		}
	}
	require.NoError(t, l.Append(all[:prefilled]))

	var done atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		defer done.Store(true)
		rng := rand.New(rand.NewPCG(12, 12))
		rest := all[prefilled:]
		for range appends {
			k := 1 + rng.IntN(maxPerCall)
			if !assert.NoError(t, l.Append(rest[:k])) {
				return
			}
			rest = rest[k:]
		}
	})
	check := func(pos uint64, got Record, err error) bool {
		return assert.NoError(t, err, "position %d", pos) &&
			assert.Equal(t, all[recAt[pos]], got, "position %d", pos)
	}
	for g := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(13, uint64(g)))
			rd := l.NewReader()
			for i := 0; i < minReads || !done.Load(); i++ {
				last := l.LastPosition()
				pos := 1 + rng.Uint64N(last)
				got, err := rd.Record(pos)
				if !check(pos, got, err) {
					return
				}
				got, err = l.ReadRecord(pos)
				if !check(pos, got, err) {
					return
				}
				if i%10 == 0 { // a stretch in order, reading ahead into the tail
					for p := pos; p <= min(pos+100, last); p++ {
						got, err := rd.Record(p)
						if !check(p, got, err) {
							return
						}
					}
				}
				if i%50 == 0 {
					_, err := rd.Record(l.LastPosition() + 1000)
					if !assert.ErrorIs(t, err, ErrNotFound) {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	want := all[:recAt[l.LastPosition()]+1]
	checkLog(t, l, want)
	require.NoError(t, l.Close())
	l = openLog(t, dir, Options{SegmentSize: 2000})
	checkLog(t, l, want)
	require.NoError(t, l.Close())
}

// TestAcknowledgedLossRefused: a log that ends before positions the offsets
// file or a checkpoint vouch for lost acknowledged appends. Open refuses it,
// naming the lost positions, and changes nothing, whether the loss looks
// like a torn tail, a truncated segment or a deleted last segment.
func TestAcknowledgedLossRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string, segs []string, ents []entry) // ents: of the last segment
		// lostFrom: the first position lost, given the records and the last
		// segment's entries.
		lostFrom func(want []Record, ents []entry) uint64
		trust    bool // open with the checkpoint at the head
	}{
		{"last record torn", func(t *testing.T, dir string, segs []string, ents []entry) {
			truncate(t, filepath.Join(dir, segs[len(segs)-1]), ents[len(ents)-1].end()-1)
		}, func(want []Record, _ []entry) uint64 { return want[len(want)-1].FirstPosition }, false},
		{"last segment emptied", func(t *testing.T, dir string, segs []string, _ []entry) {
			truncate(t, filepath.Join(dir, segs[len(segs)-1]), 0)
		}, func(want []Record, ents []entry) uint64 { return want[len(want)-len(ents)].FirstPosition }, false},
		{"last segment deleted", func(t *testing.T, dir string, segs []string, _ []entry) {
			require.NoError(t, os.Remove(filepath.Join(dir, segs[len(segs)-1])))
		}, func(want []Record, ents []entry) uint64 { return want[len(want)-len(ents)].FirstPosition }, false},
		{"last segment deleted, offsets file too: the checkpoint vouches", func(t *testing.T, dir string, segs []string, _ []entry) {
			require.NoError(t, os.Remove(filepath.Join(dir, segs[len(segs)-1])))
			require.NoError(t, os.Remove(filepath.Join(dir, offsetsName)))
		}, func(want []Record, ents []entry) uint64 { return want[len(want)-len(ents)].FirstPosition }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := writeDamageLog(t, dir, 3, 1000)
			segs := segmentFiles(t, dir)
			ents := segmentEntries(t, filepath.Join(dir, segs[len(segs)-1]))
			tc.damage(t, dir, segs, ents)
			before := snapshot(t, dir)
			opts := damageOpts
			if tc.trust {
				opts.TrustPosition = lastPos(want)
			}
			_, _, err := Open(dir, opts)
			var lost *LostError
			require.ErrorAs(t, err, &lost)
			assert.ErrorIs(t, err, ErrCorrupt)
			assert.Equal(t, tc.lostFrom(want, ents), lost.From)
			assert.Equal(t, lastPos(want), lost.To)
			assert.Equal(t, lost.From-1, lost.Last)
			assert.Contains(t, err.Error(), fmt.Sprintf("positions %d..%d are lost", lost.From, lost.To))
			assert.Equal(t, before, snapshot(t, dir), "nothing changed")
			if !tc.trust {
				assert.Equal(t, lastPos(want), Vouched(dir))
			}
		})
	}
}
