package indexer

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/cespare/xxhash/v2"
	"github.com/possumstore/possum/internal/vfs"
)

// A snapshot is the whole in-memory index in one file, written when a store
// closes, so that the next Open reads one file instead of one per type and
// tag. It is derived data, trusted only when its position equals the
// checkpoint's and the index files it describes are all there at the sizes
// it implies.
//
//	"PSNP", version uint32, position uint64, type count uint32, tag count uint32
//	per type, then per tag: uvarint name length, name, uvarint count,
//	  uvarint deltas (first position, then differences)
//	xxhash64 of everything before it, uint64
const (
	snapshotMagic   = "PSNP"
	snapshotVersion = 1
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
	if len(b) < 32 || string(b[:4]) != snapshotMagic || binary.LittleEndian.Uint32(b[4:]) != snapshotVersion {
		return damaged("bad header")
	}
	body := b[:len(b)-8]
	if binary.LittleEndian.Uint64(b[len(b)-8:]) != xxhash.Sum64(body) {
		return damaged("checksum mismatch")
	}
	upTo := binary.LittleEndian.Uint64(b[8:])
	counts := [2]int{int(binary.LittleEndian.Uint32(b[16:])), int(binary.LittleEndian.Uint32(b[20:]))}
	d := body[24:]
	x := New()
	x.typeOf = make([]uint32, upTo)
	covered := uint64(0)
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
			ps := make([]uint64, cnt)
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
	if len(d) != 0 || covered != upTo {
		return damaged("types do not cover every position")
	}
	return x, upTo, nil
}

// CheckFiles reports whether the index files under dir are exactly those of
// x, each at the size its positions imply: what Open checks before trusting
// a snapshot instead of reading every file. It checks the type index files
// when types, the tag index files when tags. It reads directories and file
// sizes, no file content.
func CheckFiles(dir string, x *Index, types, tags bool) error {
	for _, kind := range []struct {
		check bool
		dir   string
		lists func() map[string][]uint64
	}{{types, TypesDir, x.Types}, {tags, TagsDir, x.Tags}} {
		if !kind.check {
			continue
		}
		lists := kind.lists()
		d := filepath.Join(dir, kind.dir)
		ents, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		if len(ents) != len(lists) {
			return fmt.Errorf("indexer: %s holds %d files, the index %d", d, len(ents), len(lists))
		}
		for name, ps := range lists {
			st, err := os.Stat(filepath.Join(d, FileName(name)))
			if err != nil {
				return err
			}
			if want := int64(headerSize(name) + len(ps)*entrySize); st.Size() != want {
				return fmt.Errorf("indexer: index file of %q is %d bytes, expected %d", name, st.Size(), want)
			}
		}
	}
	return nil
}
