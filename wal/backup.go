package wal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// CopyStats says what CopyTo copied.
type CopyStats struct {
	Last     uint64 // the last position of the copy
	Records  int    // records in the copy
	Segments int    // segment files in the copy
	Bytes    int64  // bytes written this time (segments and offsets file)
}

// CopyTo copies the records of l that are durable when it is called into the
// WAL directory dst, which holds nothing or an earlier copy of this log:
// only what dst lacks is copied, so that copying again copies what was
// appended since. Each segment is copied up to the end of its last durable
// record, so the copy ends on a whole record; its offsets file lists every
// record. Everything written is fsync'd, and so is dst, before CopyTo
// returns. ctx can stop it between segments. It holds no lock while it copies: the bytes of durable records
// never change, so appends go on meanwhile.
//
// A dst that is not a copy of this log (a segment this log does not have, a
// record that differs) is refused, changing nothing; a segment a copy left
// unfinished (a crash of the copying process) is cut back to its last
// record, which is compared, and copied on from there.
func (l *Log) CopyTo(ctx context.Context, dst string) (CopyStats, error) {
	var st CopyStats
	l.mu.RLock()
	if l.readsClosed {
		l.mu.RUnlock()
		return st, ErrClosed
	}
	locs, segs := l.locs[:len(l.locs):len(l.locs)], l.segs[:len(l.segs):len(l.segs)]
	l.mu.RUnlock()
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return st, fmt.Errorf("wal: copy: %w", err)
	}
	// The segments to copy: those holding durable records, each up to the
	// end of its last one.
	type span struct {
		seg  *segment
		locs []recordLoc
	}
	var spans []span
	for i := 0; i < len(locs); {
		j := i
		for j < len(locs) && locs[j].seg == locs[i].seg {
			j++
		}
		spans = append(spans, span{segs[locs[i].seg], locs[i:j]})
		i = j
	}
	lastFirst := uint64(0) // the first entry index of the last segment to copy; 0: none
	if len(spans) > 0 {
		lastFirst = spans[len(spans)-1].seg.first
	}
	if err := checkNoOthers(dst, lastFirst); err != nil {
		return st, err
	}
	// Check every segment before writing any: a dst that is no copy is
	// refused unchanged.
	from := make([]int64, len(spans))
	for k, sp := range spans {
		var err error
		if from[k], err = resumeAt(sp.seg, sp.locs, filepath.Join(dst, filepath.Base(sp.seg.path))); err != nil {
			return st, err
		}
	}
	for k, sp := range spans {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n, err := copySegment(sp.seg, sp.locs, filepath.Join(dst, filepath.Base(sp.seg.path)), from[k])
		st.Bytes += n
		if err != nil {
			return st, err
		}
	}
	n, err := copyOffsets(filepath.Join(dst, offsetsName), locs, segs)
	st.Bytes += n
	if err != nil {
		return st, err
	}
	if err := syncDir(dst); err != nil {
		return st, fmt.Errorf("wal: copy: %w", err)
	}
	st.Records, st.Segments = len(locs), len(spans)
	if len(locs) > 0 {
		st.Last = locs[len(locs)-1].lastPos()
	}
	return st, nil
}

// checkNoOthers refuses a dst holding a segment after the one whose first
// entry index is lastFirst, the last to copy (any, when lastFirst is 0): dst
// then holds more than this log, so it is not a copy of it.
func checkNoOthers(dst string, lastFirst uint64) error {
	firsts, _, err := listSegments(dst)
	if err != nil {
		return fmt.Errorf("wal: copy: %w", err)
	}
	for _, f := range firsts {
		if f > lastFirst {
			return fmt.Errorf("wal: copy: %s holds segment %s, which this log does not have: not a copy of it", dst, segmentName(f))
		}
	}
	return nil
}

// resumeAt returns where the copy of seg at path resumes: the end of the
// last whole record of seg's durable records (locs) the file holds, 0 when
// it holds none. That record must be seg's, byte for byte, and the file no
// longer than seg's durable bytes.
func resumeAt(seg *segment, locs []recordLoc, path string) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	have := fi.Size()
	if end := locEnd(locs[len(locs)-1]); have > end {
		return 0, fmt.Errorf("wal: copy: %s holds %d bytes, more than the %d of the log's segment: not a copy of it", path, have, end)
	}
	// The last record ending at or before have.
	i := sort.Search(len(locs), func(i int) bool { return locEnd(locs[i]) > have }) - 1
	if i < 0 {
		return 0, nil
	}
	loc := locs[i]
	start, end := int64(loc.off)-int64(uvarintLen(uint64(loc.size))), locEnd(loc) // with its length prefix
	a, b := make([]byte, end-start), make([]byte, end-start)
	src, err := seg.file()
	if err == nil {
		_, err = src.ReadAt(a, start)
	}
	if err != nil {
		return 0, fmt.Errorf("wal: copy: read %s: %w", seg.path, closedAs(err))
	}
	if _, err := f.ReadAt(b, start); err != nil {
		return 0, fmt.Errorf("wal: copy: read %s: %w", path, err)
	}
	if !bytes.Equal(a, b) {
		return 0, fmt.Errorf("wal: copy: %s: the record at offset %d differs from the log's: not a copy of it", path, loc.off)
	}
	return end, nil
}

func locEnd(l recordLoc) int64 { return int64(l.off) + int64(l.size) }

// copySegment makes the file at path hold seg's bytes up to the end of its
// last record in locs (the durable records of seg): the bytes it holds up
// to from (see resumeAt) are kept, what follows them is replaced.
func copySegment(seg *segment, locs []recordLoc, path string, from int64) (int64, error) {
	end := locEnd(locs[len(locs)-1])
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	if from == end && fi.Size() == end {
		return 0, nil // whole already
	}
	// A file of its own, to seek: the kernel then copies (copy_file_range
	// where there is one) without the bytes passing through here.
	src, err := os.Open(seg.path)
	if err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	defer src.Close()
	if fi.Size() != from {
		if err := f.Truncate(from); err != nil {
			return 0, fmt.Errorf("wal: copy: %w", err)
		}
	}
	if _, err := src.Seek(from, io.SeekStart); err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(src, end-from))
	if err == nil && n != end-from {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, fmt.Errorf("wal: copy %s: %w", filepath.Base(seg.path), closedAs(err))
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("wal: copy: fsync %s: %w", path, err)
	}
	return n, nil
}

// copyOffsets makes the offsets file at path list exactly locs, appending
// to the entries it holds when they are the first of locs.
func copyOffsets(path string, locs []recordLoc, segs []*segment) (int64, error) {
	want := make([]byte, 0, offsetsHeaderSize+offsetsEntrySize*len(locs))
	want = append(want, offsetsMagic...)
	want = binary.LittleEndian.AppendUint32(want, offsetsVersion)
	for _, loc := range locs {
		want = appendOffsetEntry(want, loc, segs[loc.seg].first)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	defer f.Close()
	have, err := io.ReadAll(io.LimitReader(f, int64(len(want))+1))
	if err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	keep := 0 // bytes of the file that are already right
	if len(have) <= len(want) && bytes.Equal(have, want[:len(have)]) {
		keep = len(have)
	}
	if keep < offsetsHeaderSize {
		keep = 0
	} else {
		keep -= (keep - offsetsHeaderSize) % offsetsEntrySize // the header and whole entries
	}
	if keep == len(want) && len(have) == len(want) {
		return 0, nil
	}
	if err := f.Truncate(int64(keep)); err != nil {
		return 0, fmt.Errorf("wal: copy: %w", err)
	}
	n, err := f.WriteAt(want[keep:], int64(keep))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return int64(n), fmt.Errorf("wal: copy: offsets: %w", err)
	}
	return int64(n), nil
}
