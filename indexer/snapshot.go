package indexer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

// A snapshot is the whole in-memory index in one file, written when a store
// closes, so that the next Open reads one file instead of one per type and
// tag. It is derived data, trusted only when its position equals the
// checkpoint's; the projector then checks the index files it describes
// against it (CheckFiles) before it appends to them or writes a checkpoint.
//
//	"PSNP", version uint32, position uint64, type count uint32, tag count uint32
//	per type, then per tag: uvarint name length, name, uvarint count,
//	  uvarint deltas (first position, then differences)
//	version 2: the event IDs at or below position:
//	  uvarint count, then per ID: its xxhash64, uint64; uvarint position
//	  uvarint count, then per ID whose hash another took: uvarint length,
//	    the ID, uvarint position
//	xxhash64 of everything before it, uint64
//
// Version 1 (no IDs) is still read.
const (
	snapshotMagic   = "PSNP"
	snapshotVersion = 2
)

// WriteSnapshot writes the positions of x at or below upTo to path, through
// tmp and a rename, through fs. It is not fsync'd: the checkpoint that
// follows syncs it.
func WriteSnapshot(fs vfs.FS, path, tmp string, x *Index, upTo uint64) error {
	types, tags := x.Types(), x.Tags()
	buf := append([]byte(snapshotMagic), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(buf[4:], snapshotVersion)
	buf = binary.LittleEndian.AppendUint64(buf, upTo)
	countAt := len(buf)
	buf = append(buf, make([]byte, 8)...)
	for i, lists := range []map[string][]uint64{types, tags} {
		n := 0
		for name, ps := range lists {
			ps = ps[:sort.Search(len(ps), func(i int) bool { return ps[i] > upTo })]
			if len(ps) == 0 {
				continue
			}
			n++
			buf = binary.AppendUvarint(buf, uint64(len(name)))
			buf = append(buf, name...)
			buf = binary.AppendUvarint(buf, uint64(len(ps)))
			prev := uint64(0)
			for _, p := range ps {
				buf = binary.AppendUvarint(buf, p-prev)
				prev = p
			}
		}
		binary.LittleEndian.PutUint32(buf[countAt+4*i:], uint32(n))
	}
	byHash, clashes := x.idsUpTo(upTo)
	buf = binary.AppendUvarint(buf, uint64(len(byHash)))
	for h, p := range byHash {
		buf = binary.LittleEndian.AppendUint64(buf, h)
		buf = binary.AppendUvarint(buf, p)
	}
	buf = binary.AppendUvarint(buf, uint64(len(clashes)))
	for id, p := range clashes {
		buf = binary.AppendUvarint(buf, uint64(len(id)))
		buf = append(buf, id...)
		buf = binary.AppendUvarint(buf, p)
	}
	buf = binary.LittleEndian.AppendUint64(buf, xxhash.Sum64(buf))
	if err := vfs.WriteFile(fs, tmp, buf, 0o640); err != nil {
		return fmt.Errorf("indexer: snapshot: %w", err)
	}
	if err := fs.Rename(tmp, path); err != nil {
		return fmt.Errorf("indexer: snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads the snapshot at path and returns its index and the
// position it covers. A damaged snapshot is an error wrapping ErrDamaged.
func ReadSnapshot(path string) (*Index, uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	damaged := func(why string) (*Index, uint64, error) {
		return nil, 0, fmt.Errorf("%w: snapshot %s: %s", ErrDamaged, path, why)
	}
	if len(b) < 32 || string(b[:4]) != snapshotMagic {
		return damaged("bad header")
	}
	version := binary.LittleEndian.Uint32(b[4:])
	if version != 1 && version != snapshotVersion {
		return damaged(fmt.Sprintf("version %d, this possum reads 1 and %d", version, snapshotVersion))
	}
	body := b[:len(b)-8]
	if binary.LittleEndian.Uint64(b[len(b)-8:]) != xxhash.Sum64(body) {
		return damaged("checksum mismatch")
	}
	upTo := binary.LittleEndian.Uint64(b[8:])
	counts := [2]int{int(binary.LittleEndian.Uint32(b[16:])), int(binary.LittleEndian.Uint32(b[20:]))}
	d := body[24:]
	if counts[0] > len(d) || counts[1] > len(d) {
		return damaged("bad counts")
	}
	x := &Index{
		typeIDs:   make(map[string]uint32, counts[0]),
		tagIDs:    make(map[string]uint32, counts[1]),
		typeLists: make([][]uint64, 0, counts[0]),
		tagLists:  make([][]uint64, 0, counts[1]),
		typeOf:    make([]uint32, upTo),
		ids:       newEventIDs(),
	}
	covered := uint64(0)
	var slab positionSlab
	for kind, n := range counts {
		for range n {
			l, k := binary.Uvarint(d)
			if k <= 0 || l > uint64(len(d)-k) {
				return damaged("bad name")
			}
			name := string(d[k : k+int(l)])
			d = d[k+int(l):]
			cnt, k := binary.Uvarint(d)
			if k <= 0 || cnt > uint64(len(d)) {
				return damaged("bad count")
			}
			d = d[k:]
			ps := slab.take(int(cnt))
			prev := uint64(0)
			for i := range ps {
				delta, k := binary.Uvarint(d)
				if k <= 0 || delta == 0 || prev+delta > upTo {
					return damaged("bad position")
				}
				d = d[k:]
				prev += delta
				ps[i] = prev
			}
			if kind == 0 {
				id := uint32(len(x.typeLists))
				x.typeIDs[name] = id
				x.typeLists = append(x.typeLists, ps)
				for _, p := range ps {
					x.typeOf[p-1] = id
				}
				covered += cnt
			} else {
				x.tagIDs[name] = uint32(len(x.tagLists))
				x.tagLists = append(x.tagLists, ps)
			}
		}
	}
	if covered != upTo {
		return damaged("types do not cover every position")
	}
	if version >= 2 {
		var err error
		if d, err = readSnapshotIDs(d, upTo, &x.ids); err != nil {
			return damaged(err.Error())
		}
	}
	if len(d) != 0 {
		return damaged(fmt.Sprintf("%d bytes after the index", len(d)))
	}
	return x, upTo, nil
}

// Mismatch lists what CheckFiles found out of place.
type Mismatch struct {
	// Types and Tags: the names whose index file is missing or not at the
	// size its positions imply. WriteFile rewrites them.
	Types, Tags []string
	// Strays: index files (paths) that no type or tag owns. Remove them.
	Strays []string
}

// Empty says whether nothing is out of place.
func (m Mismatch) Empty() bool { return len(m.Types)+len(m.Tags)+len(m.Strays) == 0 }

// CheckFiles compares the index files under dir with the positions of x at
// or below upTo: each type and tag with such positions must have its file,
// at exactly the size they imply, and no other index file may be there. It
// reads directories and file sizes, no file content, so a change that keeps
// a file's size goes unseen (a full Load or possum verify finds it). Entries
// that are not index files (no storedir.IndexFileExt, or directories) are ignored, as Load
// ignores them. It checks the type index files when types, the tag index
// files when tags.
func CheckFiles(dir string, x *Index, upTo uint64, types, tags bool) (Mismatch, error) {
	var m Mismatch
	for _, kind := range []struct {
		check bool
		dir   string
		lists func() map[string][]uint64
		bad   *[]string
	}{{types, storedir.TypesDir, x.Types, &m.Types}, {tags, storedir.TagsDir, x.Tags, &m.Tags}} {
		if !kind.check {
			continue
		}
		d := filepath.Join(dir, kind.dir)
		ents, err := os.ReadDir(d)
		if err != nil {
			return m, fmt.Errorf("indexer: %w", err)
		}
		onDisk := make(map[string]bool, len(ents))
		for _, e := range ents {
			if !e.IsDir() && strings.HasSuffix(e.Name(), storedir.IndexFileExt) {
				onDisk[e.Name()] = true
			}
		}
		for name, ps := range kind.lists() {
			n := sort.Search(len(ps), func(i int) bool { return ps[i] > upTo })
			if n == 0 {
				continue
			}
			file := storedir.IndexFileName(name)
			if !onDisk[file] {
				*kind.bad = append(*kind.bad, name)
				continue
			}
			delete(onDisk, file)
			st, err := os.Stat(filepath.Join(d, file))
			if errors.Is(err, os.ErrNotExist) {
				*kind.bad = append(*kind.bad, name)
				continue
			}
			if err != nil {
				return m, fmt.Errorf("indexer: %w", err)
			}
			if st.Size() != int64(headerSize(name)+n*entrySize) || !st.Mode().IsRegular() {
				*kind.bad = append(*kind.bad, name)
			}
		}
		for file := range onDisk {
			m.Strays = append(m.Strays, filepath.Join(d, file))
		}
		sort.Strings(*kind.bad)
	}
	sort.Strings(m.Strays)
	return m, nil
}

// positionSlab hands out position lists carved from large shared arrays, so
// that reading a snapshot of many short lists costs a few allocations, not
// one per list. Each list's capacity is its length: a later append to it
// moves it out of the slab instead of overwriting its neighbour.
type positionSlab struct{ free []uint64 }

const slabSize = 1 << 16

func (s *positionSlab) take(n int) []uint64 {
	if n > slabSize/8 {
		return make([]uint64, n)
	}
	if n > len(s.free) {
		s.free = make([]uint64, slabSize)
	}
	ps := s.free[:n:n]
	s.free = s.free[n:]
	return ps
}

// readSnapshotIDs reads the IDs of a version 2 snapshot from d into ids and
// returns what follows them.
func readSnapshotIDs(d []byte, upTo uint64, ids *eventIDs) ([]byte, error) {
	position := func() (uint64, error) {
		p, k := binary.Uvarint(d)
		if k <= 0 || p == 0 || p > upTo {
			return 0, errors.New("bad ID position")
		}
		d = d[k:]
		return p, nil
	}
	n, k := binary.Uvarint(d)
	if k <= 0 || n > uint64(len(d))/9 {
		return nil, errors.New("bad ID count")
	}
	d = d[k:]
	ids.byHash = make(map[uint64]uint64, n)
	for range n {
		if len(d) < 8 {
			return nil, errors.New("bad ID")
		}
		h := binary.LittleEndian.Uint64(d)
		d = d[8:]
		p, err := position()
		if err != nil {
			return nil, err
		}
		ids.byHash[h] = p
	}
	m, k := binary.Uvarint(d)
	if k <= 0 || m > uint64(len(d)) {
		return nil, errors.New("bad ID clash count")
	}
	d = d[k:]
	for range m {
		l, k := binary.Uvarint(d)
		if k <= 0 || l > uint64(len(d)-k) {
			return nil, errors.New("bad ID")
		}
		id := string(d[k : k+int(l)])
		d = d[k+int(l):]
		p, err := position()
		if err != nil {
			return nil, err
		}
		if ids.clashes == nil {
			ids.clashes = map[string]uint64{}
		}
		ids.clashes[id] = p
	}
	return d, nil
}
