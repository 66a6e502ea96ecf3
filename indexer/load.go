package indexer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

// LoadStats describes what Load read.
type LoadStats struct {
	TypeFiles, TagFiles int
	TagEntries          int      // tag positions kept (at or below upTo)
	TrimmedBytes        int64    // bytes cut from files: positions beyond upTo, torn entries
	DamagedFiles        []string // files removed as unreadable, and why
}

// Load builds an Index from the index files under dir, keeping the positions
// at or below upTo and trimming the files to them, so that the projector can
// append from upTo+1. Every position 1..upTo must have exactly one type.
// An unreadable or misnamed file is removed and listed in the stats; a
// position with no type or two is an error wrapping ErrDamaged. Either way,
// the caller compares the counts with what it expects and rebuilds from the
// WAL when they differ. Trims and removals go through fs.
func Load(fs vfs.FS, dir string, upTo uint64) (*Index, LoadStats, error) {
	var st LoadStats
	x := New()
	x.typeOf = make([]uint32, upTo)
	for i := range x.typeOf {
		x.typeOf[i] = ^uint32(0)
	}
	err := loadDir(fs, filepath.Join(dir, storedir.TypesDir), upTo, &st, func(name string, ps []uint64) error {
		st.TypeFiles++
		id := uint32(len(x.typeLists))
		x.typeIDs[name] = id
		x.typeLists = append(x.typeLists, ps)
		for _, p := range ps {
			if x.typeOf[p-1] != ^uint32(0) {
				return fmt.Errorf("%w: position %d has two types", ErrDamaged, p)
			}
			x.typeOf[p-1] = id
		}
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	for i, id := range x.typeOf {
		if id == ^uint32(0) {
			return nil, st, fmt.Errorf("%w: position %d is in no type index file", ErrDamaged, i+1)
		}
	}
	err = loadDir(fs, filepath.Join(dir, storedir.TagsDir), upTo, &st, func(name string, ps []uint64) error {
		st.TagFiles++
		x.tagIDs[name] = uint32(len(x.tagLists))
		x.tagLists = append(x.tagLists, ps)
		st.TagEntries += len(ps)
		return nil
	})
	if err != nil {
		return nil, st, err
	}
	return x, st, nil
}

// loadDir reads every index file in dir, trims each to the positions at or
// below upTo (removing files left empty) and hands the rest to add.
func loadDir(fs vfs.FS, dir string, upTo uint64, st *LoadStats, add func(string, []uint64) error) error {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("indexer: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), storedir.IndexFileExt) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		name, ps, valid, err := ReadFile(path)
		if err == nil && storedir.IndexFileName(name) != e.Name() {
			err = fmt.Errorf("%w: %s holds the index of %q", ErrDamaged, path, name)
		}
		if errors.Is(err, ErrDamaged) {
			// A torn header or damaged file goes; if it held positions the
			// caller needed, its counts no longer add up and it rebuilds.
			st.DamagedFiles = append(st.DamagedFiles, err.Error())
			if err := fs.Remove(path); err != nil {
				return fmt.Errorf("indexer: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("indexer: %w", err)
		}
		kept, cut, err := trim(fs, path, ps, valid, upTo)
		st.TrimmedBytes += cut
		if err != nil {
			return err
		}
		if len(kept) == 0 {
			continue
		}
		if err := add(name, kept); err != nil {
			return fmt.Errorf("indexer: %s: %w", path, err)
		}
	}
	return nil
}
