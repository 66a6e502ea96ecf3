package indexer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/possumstore/possum/internal/sys/vfs"
)

// Index files: one append-only file per type (index/types/) and per tag
// (index/tags/), named by storedir.IndexFileName, listing the positions of its events in ascending order.
//
//	offset  size  field
//	0       4     magic "PIDX"
//	4       4     format version, little-endian uint32 (1)
//	8       4     name length n, little-endian uint32
//	12      n     the type or tag, UTF-8, exactly as stored
//	12+n    pad   zero bytes up to a multiple of 8 (header size H)
//	H+8k    8     position k, little-endian uint64, ascending
//
// Fixed-width entries make appending O(1) and let a reader find "positions
// from X" by binary search over the file (ReadFrom). A trailing partial entry
// is a torn append: readers ignore it, Load trims it.
const (
	fileMagic   = "PIDX"
	fileVersion = 1
	entrySize   = 8
)

// ErrDamaged is wrapped by errors about an index file that cannot be read
// (bad header, unsorted positions, a name that does not match the file name).
var ErrDamaged = errors.New("indexer: damaged index file")

// fileHeader returns the header of the index file of name.
func fileHeader(name string) []byte {
	h := make([]byte, 0, headerSize(name))
	h = append(h, fileMagic...)
	h = binary.LittleEndian.AppendUint32(h, fileVersion)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(name)))
	h = append(h, name...)
	return h[:cap(h)] // zero padding
}

func headerSize(name string) int { return (12 + len(name) + 7) &^ 7 }

// readHeader reads the header at the start of b and returns the name and the
// header size.
func readHeader(b []byte) (string, int, error) {
	if len(b) < 12 || string(b[:4]) != fileMagic {
		return "", 0, fmt.Errorf("%w: bad magic", ErrDamaged)
	}
	if v := binary.LittleEndian.Uint32(b[4:8]); v != fileVersion {
		return "", 0, fmt.Errorf("%w: unknown version %d", ErrDamaged, v)
	}
	n := int(binary.LittleEndian.Uint32(b[8:12]))
	if n > len(b)-12 {
		return "", 0, fmt.Errorf("%w: name of %d bytes runs past the file", ErrDamaged, n)
	}
	name := string(b[12 : 12+n])
	hs := headerSize(name)
	if hs > len(b) {
		return "", 0, fmt.Errorf("%w: header runs past the file", ErrDamaged)
	}
	return name, hs, nil
}

// ReadFile reads a whole index file: its name, its positions, and the length
// of its valid part (header plus whole entries).
func ReadFile(path string) (name string, positions []uint64, valid int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, 0, err
	}
	name, hs, err := readHeader(b)
	if err != nil {
		return "", nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	n := (len(b) - hs) / entrySize
	positions = make([]uint64, n)
	for i := range positions {
		p := binary.LittleEndian.Uint64(b[hs+i*entrySize:])
		if p == 0 || (i > 0 && p <= positions[i-1]) {
			return "", nil, 0, fmt.Errorf("%s: %w: entry %d (%d) out of order", path, ErrDamaged, i, p)
		}
		positions[i] = p
	}
	return name, positions, int64(hs + n*entrySize), nil
}

// entryFile is an index file opened for reads by entry: its header read,
// its entries read one at a time where asked.
type entryFile struct {
	f    *os.File
	path string
	name string
	hs   int // header size
	n    int // whole entries
	err  error
	buf  [entrySize]byte
}

// openEntries opens the index file at path and reads its header alone: its
// name, the header's size and the number of whole entries after it.
func openEntries(path string) (_ *entryFile, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var fixed [12]byte
	if _, err := f.ReadAt(fixed[:], 0); err != nil {
		return nil, fmt.Errorf("%s: %w: short header: %v", path, ErrDamaged, err)
	}
	nameLen := int64(binary.LittleEndian.Uint32(fixed[8:12]))
	head := make([]byte, min(st.Size(), (12+nameLen+7)&^7))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	name, hs, err := readHeader(head)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &entryFile{f: f, path: path, name: name, hs: hs, n: int((st.Size() - int64(hs)) / entrySize)}, nil
}

// at returns entry i; a failed read returns 0 and is kept in e.err.
func (e *entryFile) at(i int) uint64 {
	if _, err := e.f.ReadAt(e.buf[:], int64(e.hs+i*entrySize)); err != nil && e.err == nil {
		e.err = fmt.Errorf("%s: %w", e.path, err)
	}
	return binary.LittleEndian.Uint64(e.buf[:])
}

// search returns the first entry at or after lo whose position is at least
// from (e.n when none), by binary search.
func (e *entryFile) search(lo int, from uint64) int {
	return lo + sort.Search(e.n-lo, func(k int) bool { return e.at(lo+k) >= from })
}

// ReadFrom returns the positions >= from in the index file at path, finding
// the first by binary search: it reads the header and the entries it returns,
// not the whole file.
func ReadFrom(path string, from uint64) ([]uint64, error) {
	e, err := openEntries(path)
	if err != nil {
		return nil, err
	}
	defer e.f.Close()
	i := e.search(0, from)
	if e.err != nil {
		return nil, e.err
	}
	rest := make([]byte, (e.n-i)*entrySize)
	if _, err := e.f.ReadAt(rest, int64(e.hs+i*entrySize)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]uint64, e.n-i)
	for k := range out {
		out[k] = binary.LittleEndian.Uint64(rest[k*entrySize:])
	}
	return out, nil
}

// AppendEntries appends positions to the open index file f (opened with
// O_APPEND), creating its header when the file is empty. One write call.
func AppendEntries(f io.Writer, name string, empty bool, positions []uint64, buf []byte) ([]byte, error) {
	buf = buf[:0]
	if empty {
		buf = append(buf, fileHeader(name)...)
	}
	for _, p := range positions {
		buf = binary.LittleEndian.AppendUint64(buf, p)
	}
	_, err := f.Write(buf)
	return buf, err
}

// EncodeFile returns the whole index file of name, listing positions.
func EncodeFile(name string, positions []uint64) []byte {
	buf := fileHeader(name)
	buf = append(make([]byte, 0, len(buf)+len(positions)*entrySize), buf...)
	for _, p := range positions {
		buf = binary.LittleEndian.AppendUint64(buf, p)
	}
	return buf
}

// WriteFile writes the whole index file of name, listing positions, at path:
// written to tmp first and renamed over path, so readers see the old file or
// the new one. Not fsync'd. Every change goes through fs.
func WriteFile(fs vfs.FS, path, tmp, name string, positions []uint64) error {
	if err := vfs.WriteFile(fs, tmp, EncodeFile(name, positions), 0o640); err != nil {
		return fmt.Errorf("indexer: %w", err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("indexer: %w", err)
	}
	return nil
}

// TrimFile cuts the index file at path to the positions at or below upTo
// (and any torn entry); a file left with none is removed. A missing file is
// fine. Every change goes through fs.
func TrimFile(fs vfs.FS, path string, upTo uint64) error {
	_, ps, valid, err := ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("indexer: trim: %w", err)
	}
	_, _, err = trim(fs, path, ps, valid, upTo)
	return err
}

// trim cuts the index file at path, holding positions ps in its first valid
// bytes, to the positions at or below upTo, removing it when none remain. It
// returns the positions kept and the bytes cut.
func trim(fs vfs.FS, path string, ps []uint64, valid int64, upTo uint64) ([]uint64, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("indexer: trim: %w", err)
	}
	keep := sort.Search(len(ps), func(i int) bool { return ps[i] > upTo })
	if keep == 0 {
		if err := fs.Remove(path); err != nil {
			return nil, 0, fmt.Errorf("indexer: trim: %w", err)
		}
		return nil, st.Size(), nil
	}
	size := valid - int64(len(ps)-keep)*entrySize
	if size != st.Size() {
		if err := fs.Truncate(path, size); err != nil {
			return nil, 0, fmt.Errorf("indexer: trim %s: %w", path, err)
		}
	}
	return ps[:keep:keep], st.Size() - size, nil
}

// FileReader reads the positions of an index file in order, a buffer at a
// time: memory independent of the file's length (possum verify reads every
// index file so).
type FileReader struct {
	path  string
	f     *os.File
	br    *bufio.Reader
	name  string
	hs    int
	n     int // whole entries in the file
	read  int // entries returned
	last  uint64
	err   error
	entry [entrySize]byte
}

// OpenFile opens the index file at path and reads its header. A header
// that does not hold is an error wrapping ErrDamaged.
func OpenFile(path string) (*FileReader, error) {
	e, err := openEntries(path)
	if err != nil {
		return nil, err
	}
	if _, err := e.f.Seek(int64(e.hs), io.SeekStart); err != nil {
		e.f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &FileReader{path: path, f: e.f, br: bufio.NewReaderSize(e.f, 64<<10), name: e.name, hs: e.hs, n: e.n}, nil
}

// Name returns the type or tag the file is the index of.
func (r *FileReader) Name() string { return r.name }

// Next returns the next position, false at the end of the whole entries
// or at an error (Err).
func (r *FileReader) Next() (uint64, bool) {
	if r.err != nil || r.read >= r.n {
		return 0, false
	}
	if _, err := io.ReadFull(r.br, r.entry[:]); err != nil {
		r.err = fmt.Errorf("%s: %w", r.path, err)
		return 0, false
	}
	p := binary.LittleEndian.Uint64(r.entry[:])
	if p == 0 || (r.read > 0 && p <= r.last) {
		r.err = fmt.Errorf("%s: %w: entry %d (%d) out of order", r.path, ErrDamaged, r.read, p)
		return 0, false
	}
	r.read++
	r.last = p
	return p, true
}

// Err returns what stopped Next early: an entry out of order (wrapping
// ErrDamaged) or a read error; nil at the end of the file.
func (r *FileReader) Err() error { return r.err }

// Valid returns the length of the file's valid part: header and whole
// entries (a longer file ends in a torn entry).
func (r *FileReader) Valid() int64 { return int64(r.hs + r.n*entrySize) }

// Close closes the file.
func (r *FileReader) Close() error { return r.f.Close() }

// PositionsIn returns the name of the index file at path and its positions
// that lie in any of the ascending, disjoint ranges [from, to] of ranges,
// found by binary search: it reads the header and what it returns.
func PositionsIn(path string, ranges [][2]uint64) (string, []uint64, error) {
	e, err := openEntries(path)
	if err != nil {
		return "", nil, err
	}
	defer e.f.Close()
	var out []uint64
	i := 0
	for _, r := range ranges {
		for i = e.search(i, r[0]); i < e.n && e.err == nil; i++ {
			p := e.at(i)
			if p > r[1] {
				break
			}
			out = append(out, p)
		}
	}
	if e.err != nil {
		return "", nil, e.err
	}
	return e.name, out, nil
}
