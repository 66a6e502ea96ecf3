package projector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

// Choice says which files the projector materializes. The WAL and the
// in-memory index serve reads either way; the files are for other
// processes.
type Choice struct {
	EventFiles bool // events/<position>.json
	TypeIndex  bool // index/types/
	TagIndex   bool // index/tags/
}

// Everything is the default choice: every file.
var Everything = Choice{EventFiles: true, TypeIndex: true, TagIndex: true}

// The file storedir.ProjectionFile records a store's choice when it is not
// Everything: one line, the words "events", "types", "tags" of the files
// it materializes, space-separated, or "none".

var choiceWords = []struct {
	word string
	get  func(*Choice) *bool
}{
	{"events", func(c *Choice) *bool { return &c.EventFiles }},
	{"types", func(c *Choice) *bool { return &c.TypeIndex }},
	{"tags", func(c *Choice) *bool { return &c.TagIndex }},
}

// String returns the words of the choice, as storedir.ProjectionFile holds them.
func (c Choice) String() string {
	var words []string
	for _, w := range choiceWords {
		if *w.get(&c) {
			words = append(words, w.word)
		}
	}
	if len(words) == 0 {
		return "none"
	}
	return strings.Join(words, " ")
}

// Index reports whether the choice materializes both kinds of index file.
func (c Choice) Index() bool { return c.TypeIndex && c.TagIndex }

// ReadChoice returns the choice recorded in the store directory dir:
// Everything when there is no storedir.ProjectionFile.
func ReadChoice(dir string) (Choice, error) {
	b, err := os.ReadFile(filepath.Join(dir, storedir.ProjectionFile))
	if errors.Is(err, os.ErrNotExist) {
		return Everything, nil
	}
	if err != nil {
		return Choice{}, fmt.Errorf("projector: %w", err)
	}
	var c Choice
	line := strings.TrimSuffix(string(b), "\n")
	if line == "none" {
		return c, nil
	}
	for _, word := range strings.Split(line, " ") {
		found := false
		for _, w := range choiceWords {
			if p := w.get(&c); w.word == word && !*p {
				*p, found = true, true
			}
		}
		if !found {
			return Choice{}, fmt.Errorf("projector: %s: %q is not a projection (want some of \"events types tags\", or \"none\")", filepath.Join(dir, storedir.ProjectionFile), line)
		}
	}
	return c, nil
}

// ChangeChoice records c as the choice of the store in dir, durably, when
// it differs from the recorded one, and reports whether it did. A change
// first removes the checkpoint (durably), so that the next Open trusts none
// of the projection and rebuilds what c asks for; the files of the kinds c
// leaves out are removed by every Open (see RemoveUnchosen).
func ChangeChoice(fs vfs.FS, dir string, c Choice) (bool, error) {
	old, err := ReadChoice(dir)
	if err != nil || old == c {
		return false, err
	}
	if err := fs.Remove(filepath.Join(dir, storedir.CheckpointFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("projector: %w", err)
	}
	if err := fs.SyncDir(dir); err != nil {
		return false, fmt.Errorf("projector: %w", err)
	}
	if err := fs.MkdirAll(filepath.Join(dir, storedir.TmpDir), 0o750); err != nil {
		return false, fmt.Errorf("projector: %w", err)
	}
	path := filepath.Join(dir, storedir.ProjectionFile)
	if c == Everything {
		err = fs.Remove(path)
		if err == nil {
			err = fs.SyncDir(dir)
		}
	} else {
		err = vfs.WriteFileDurably(fs, path, filepath.Join(dir, storedir.TmpDir, storedir.ProjectionFile), []byte(c.String()+"\n"), 0o640)
	}
	if err != nil {
		return false, fmt.Errorf("projector: record the projection choice: %w", err)
	}
	return true, nil
}

// choiceDir is a directory of the projection, relative to the store, and
// whether the choice materializes its files.
type choiceDir struct {
	chosen bool
	path   string
	index  bool // an index directory
}

// dirs returns the directories of the three kinds of file and whether c
// materializes each.
func (c Choice) dirs() []choiceDir {
	return []choiceDir{
		{c.EventFiles, storedir.EventsDir, false},
		{c.TypeIndex, filepath.Join(storedir.IndexDir, storedir.TypesDir), true},
		{c.TagIndex, filepath.Join(storedir.IndexDir, storedir.TagsDir), true},
	}
}

// RemoveUnchosen removes the directories of the files c leaves out.
func RemoveUnchosen(fs vfs.FS, dir string, c Choice) error {
	for _, d := range c.dirs() {
		path := filepath.Join(dir, d.path)
		if _, err := os.Stat(path); d.chosen || errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := fs.RemoveAll(path); err != nil {
			return fmt.Errorf("projector: %w", err)
		}
	}
	return nil
}
