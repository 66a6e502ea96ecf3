package wal

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

// segmentNameLen is the length of a tidwall/wal segment file name.
const segmentNameLen = 20

func segmentName(first uint64) string { return fmt.Sprintf("%020d", first) }

// CorruptionError reports damage in the WAL that is not a torn tail: a record
// that fails its checks with valid records after it, or a missing segment.
// Opening refuses such a log; repairing it loses data and is the operator's
// decision (see the recovery package).
type CorruptionError struct {
	Segment string // segment file name
	Offset  int64  // byte offset of the damaged entry in the segment
	Reason  string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: %s at segment %s offset %d", e.Reason, e.Segment, e.Offset)
}

func (e *CorruptionError) Unwrap() error { return ErrCorrupt }

// LostError reports a log that ends before positions that were acknowledged:
// a checkpoint or the log's own offsets file vouch for them (a truncated or
// deleted segment, say). Open refuses such a log; it wraps ErrCorrupt.
type LostError struct {
	From, To   uint64 // the positions lost
	Last       uint64 // where the log ends
	Checkpoint uint64 // what the checkpoint vouches for (0: none)
	Offsets    uint64 // what the offsets file vouches for (0: none)
}

func (e *LostError) Error() string {
	return fmt.Sprintf("wal: positions %d..%d are lost: the log ends at position %d, but they were acknowledged (the checkpoint vouches for positions up to %d, the offsets file up to %d)",
		e.From, e.To, e.Last, e.Checkpoint, e.Offsets)
}

func (e *LostError) Unwrap() error { return ErrCorrupt }

// Vouched returns the last position the offsets file of the log in dir
// vouches for: every position up to it was acknowledged (0: none, or no
// offsets file).
func Vouched(dir string) uint64 {
	return readOffsets(filepath.Join(dir, offsetsName), 0, nil, nil).vouched
}

// TornTail describes a torn tail that Open cut off.
type TornTail struct {
	Segment string // segment file name
	Offset  int64  // the segment was cut to this length
	Dropped int64  // bytes removed
	Copy    string // path of the copy of the damaged segment, kept for audit
	Reason  string // what did not hold at Offset
}

// segmentScan is what scanning one segment found.
type segmentScan struct {
	locs   []recordLoc
	size   int64 // bytes of valid entries
	damage *damage
}

type damage struct {
	offset int64
	reason string
	// resumes: a valid entry exists after the damage in the same segment.
	resumes bool
}

// listSegments returns the first indices of the segment files in dir, sorted,
// and the names of leftover tidwall truncation markers (.START/.END). possum
// never truncates through tidwall, so a marker means the directory was
// touched by something else.
func listSegments(dir string) (firsts []uint64, markers []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || len(name) < segmentNameLen {
			continue
		}
		first, err := strconv.ParseUint(name[:segmentNameLen], 10, 64)
		if err != nil || first == 0 {
			continue
		}
		switch suffix := name[segmentNameLen:]; suffix {
		case "":
			firsts = append(firsts, first)
		case ".START", ".END":
			markers = append(markers, name)
		}
	}
	slices.Sort(firsts)
	return firsts, markers, nil
}

// scanSegment parses and verifies the entries of one segment's bytes from
// offset from on; nextPos is the position the first of them must start at.
func scanSegment(data []byte, seg uint32, from int64, nextPos uint64) segmentScan {
	var sc segmentScan
	off := int(from)
	for off < len(data) {
		n, frame, reason := nextEntry(data[off:])
		if reason == "" {
			first, count, herr := decodeHeader(frame)
			if herr != nil {
				reason = herr.Error()
			} else if first != nextPos {
				// A record that checks out but is out of sequence is no torn write.
				sc.damage = &damage{offset: int64(off), resumes: true,
					reason: fmt.Sprintf("record starts at position %d, expected %d", first, nextPos)}
				break
			} else {
				sc.locs = append(sc.locs, recordLoc{
					firstPos: first,
					count:    uint32(count),
					seg:      seg,
					off:      uint32(off + n - len(frame)),
					size:     uint32(len(frame)),
				})
				nextPos += uint64(count)
				off += n
				continue
			}
		}
		sc.damage = &damage{offset: int64(off), reason: reason, resumes: lastValidAfter(data, off+1) > 0}
		break
	}
	sc.size = int64(off)
	return sc
}

// readFrom returns the segment's bytes, with the first from bytes left zero
// (not read): offsets stay those of the file.
func readFrom(path string, from int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if from > st.Size() {
		return nil, fmt.Errorf("resume offset %d beyond segment size %d", from, st.Size())
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data[from:], from); err != nil && err != io.EOF {
		return nil, fmt.Errorf("wal: read segment: %w", err)
	}
	return data, nil
}

// readSegment reads the whole file at path into buf, grown as needed, and
// returns the bytes read: a scan of many segments reuses one buffer.
func readSegment(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return buf[:0], err
	}
	if int64(cap(buf)) < st.Size() {
		buf = make([]byte, st.Size())
	}
	buf = buf[:st.Size()]
	n, err := io.ReadFull(f, buf)
	if err == io.ErrUnexpectedEOF {
		err = nil // shorter than it was a moment ago
	}
	return buf[:n], err
}

// nextEntry parses one tidwall entry (uvarint length, frame) at the start of
// b and verifies the frame. It returns the entry's total length and its frame,
// or why it is not a valid entry.
func nextEntry(b []byte) (n int, frame []byte, reason string) {
	size, un := binary.Uvarint(b)
	if un <= 0 {
		return 0, nil, "unreadable entry length"
	}
	if size > uint64(len(b)-un) {
		return 0, nil, fmt.Sprintf("entry of %d bytes runs past the end of the segment", size)
	}
	frame = b[un : un+int(size)]
	if _, err := checkFrame(frame); err != nil {
		return 0, nil, err.Error()
	}
	return un + int(size), frame, ""
}

// lastValidAfter returns the last position of any valid record starting at
// or after byte from in data (0: none), by trying every offset: the sign
// that damage is in the middle of the log, not a torn tail, and where the
// log would end without it. It is only called once damage is found, so its
// cost is paid only then.
func lastValidAfter(data []byte, from int) uint64 {
	last := uint64(0)
	validFrames(data, from, func(_ int, first uint64, count int) bool {
		last = max(last, first+uint64(count)-1)
		return true
	})
	return last
}

// validFrames calls fn with the offset, first position and event count of
// each valid entry (its frame verifies, its header decodes) that starts at
// or after byte from in data, found by trying every offset and going on
// after each one found, until fn returns false.
func validFrames(data []byte, from int, fn func(off int, first uint64, count int) bool) {
	for o := from; o+frameHeaderSize < len(data); o++ {
		// cheap filter before the checksum: the version byte right after the length
		if _, un := binary.Uvarint(data[o:]); un <= 0 || o+un >= len(data) || data[o+un] < formatV1 || data[o+un] > formatV3 {
			continue
		}
		if n, frame, reason := nextEntry(data[o:]); reason == "" {
			if first, count, err := decodeHeader(frame); err == nil {
				if !fn(o, first, count) {
					return
				}
				o += n - 1
			}
		}
	}
}

// decodeHeader reads the first position and event count of the record in a
// verified frame; the checksum already vouches for the rest.
func decodeHeader(frame []byte) (first uint64, count int, err error) {
	if frame[0] != formatV1 {
		return v2Header(frame[frameHeaderSize:])
	}
	d := payloadDecoder{b: frame[frameHeaderSize:]}
	first, _, count = d.header()
	return first, count, d.err
}

// repairTail copies the damaged segment aside and cuts it to size bytes,
// fsyncing the file and the directory.
func repairTail(dir, name string, size int64, reason string) (*TornTail, error) {
	path := filepath.Join(dir, name)
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("wal: repair %s: %w", name, err)
	}
	copyPath := path + "." + storedir.BrokenSuffix()
	if err := copyFile(vfs.OS, path, copyPath); err != nil {
		return nil, fmt.Errorf("wal: repair %s: keep a copy: %w", name, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: repair %s: %w", name, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: repair %s: truncate to %d: %w", name, size, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: repair %s: fsync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("wal: repair %s: %w", name, err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return &TornTail{Segment: name, Offset: size, Dropped: st.Size() - size, Copy: copyPath, Reason: reason}, nil
}

// copyFile copies the file at src to dst, which must not exist, and fsyncs
// the copy; the copy is written through fs.
func copyFile(fs vfs.FS, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := fs.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncDir(dir string) error {
	if err := platform.SyncDir(dir); err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	return nil
}
