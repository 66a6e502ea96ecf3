// Package walmap maps the bytes of a possum WAL directory: its segments,
// the records (tidwall entries) in each, and where in the segment file
// each record's frame header, offset table and each event's entry lie, so
// that a test outside package wal can damage exactly one of them. It reads
// the format of docs/FORMAT.md on its own, apart from package wal, and
// knows records of versions 2 and 3 (those possum writes today).
//
// It is internal/testkit: tests only.
package walmap

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// Segment is one segment file.
type Segment struct {
	Name, Path string
	First      uint64 // the tidwall index of its first record
	Size       int64
	Records    []Record
}

// Record is one record: one tidwall entry holding one frame. Offsets are
// in the segment file.
type Record struct {
	Index    uint64 // tidwall entry index (record 1, 2, ...)
	Off      int64  // the entry: its uvarint length, then the frame
	FrameOff int64  // the frame: version, payload length, checksum, payload
	End      int64
	Version  byte
	First    uint64 // its first position
	// Table is the offset table's bytes [from, to); Entries each event's
	// entry [from, to), in position order.
	Table   [2]int64
	Entries [][2]int64
}

// Last returns the record's last position.
func (r Record) Last() uint64 { return r.First + uint64(len(r.Entries)) - 1 }

// Header returns the bytes [from, to) of the frame header and the
// payload header (first position, count): the record's header.
func (r Record) Header() [2]int64 { return [2]int64{r.FrameOff, r.FrameOff + 13 + 12} }

// Map maps every segment of the WAL in walDir, which must be intact, in
// order.
func Map(t testing.TB, walDir string) []Segment {
	t.Helper()
	ents, err := os.ReadDir(walDir)
	require.NoError(t, err)
	var segs []Segment
	for _, e := range ents {
		name := e.Name()
		first, err := strconv.ParseUint(name, 10, 64)
		if len(name) != 20 || err != nil {
			continue
		}
		path := filepath.Join(walDir, name)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		seg := Segment{Name: name, Path: path, First: first, Size: int64(len(data))}
		for off := 0; off < len(data); {
			n, un := binary.Uvarint(data[off:])
			require.Positive(t, un, "%s offset %d", path, off)
			frame := off + un
			end := frame + int(n)
			require.LessOrEqual(t, end, len(data), "%s offset %d", path, off)
			version := data[frame]
			require.Contains(t, []byte{2, 3}, version, "%s offset %d: version", path, off)
			p := frame + 13
			count := int(binary.LittleEndian.Uint32(data[p+8:]))
			r := Record{Index: first + uint64(len(seg.Records)), Off: int64(off), FrameOff: int64(frame), End: int64(end), Version: version,
				First: binary.LittleEndian.Uint64(data[p:]), Table: [2]int64{int64(p + 12), int64(p + 12 + 4*count)}}
			at := 12 + 4*count
			for i := range count {
				e := int(binary.LittleEndian.Uint32(data[p+12+4*i:]))
				r.Entries = append(r.Entries, [2]int64{int64(p + at), int64(p + e)})
				at = e
			}
			seg.Records = append(seg.Records, r)
			off = end
		}
		segs = append(segs, seg)
	}
	slices.SortFunc(segs, func(a, b Segment) int { return int(a.First) - int(b.First) })
	return segs
}

// Records returns every record of segs, in order.
func Records(segs []Segment) []Record {
	var out []Record
	for _, s := range segs {
		out = append(out, s.Records...)
	}
	return out
}

// Find returns the segment and record holding position pos.
func Find(segs []Segment, pos uint64) (Segment, Record, bool) {
	for _, s := range segs {
		for _, r := range s.Records {
			if pos >= r.First && pos <= r.Last() {
				return s, r, true
			}
		}
	}
	return Segment{}, Record{}, false
}

// Flip flips bit 4 of the byte at off in the file at path.
func Flip(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0x10
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

// Zero writes n zero bytes at off in the file at path.
func Zero(t testing.TB, path string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteAt(make([]byte, n), off)
	require.NoError(t, err)
}
