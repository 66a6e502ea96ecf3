package projector

import (
	"container/list"
	"fmt"
	"os"
	"path/filepath"

	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
)

type fileKey struct {
	kind string // storedir.TypesDir or storedir.TagsDir
	name string
}

// fileCache keeps the most recently used index files open for appending, so
// a hot type or tag costs one write per batch and no open.
type fileCache struct {
	fs    vfs.FS
	max   int
	order *list.List // of *openFile, most recent first
	files map[fileKey]*list.Element
}

type openFile struct {
	key fileKey
	f   vfs.File
}

func newFileCache(fs vfs.FS, max int) *fileCache {
	return &fileCache{fs: fs, max: max, order: list.New(), files: map[fileKey]*list.Element{}}
}

// get returns the open index file of k and whether it is empty (it then
// needs its header).
func (c *fileCache) get(dir string, k fileKey) (vfs.File, bool, error) {
	if el, ok := c.files[k]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*openFile).f, false, nil
	}
	path := filepath.Join(dir, storedir.IndexDir, k.kind, storedir.IndexFileName(k.name))
	f, err := c.fs.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, false, fmt.Errorf("projector: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("projector: %w", err)
	}
	c.files[k] = c.order.PushFront(&openFile{key: k, f: f})
	if c.order.Len() > c.max {
		c.drop(c.order.Back().Value.(*openFile).key)
	}
	return f, st.Size() == 0, nil
}

func (c *fileCache) drop(k fileKey) {
	if el, ok := c.files[k]; ok {
		el.Value.(*openFile).f.Close()
		c.order.Remove(el)
		delete(c.files, k)
	}
}

func (c *fileCache) closeAll() {
	for k := range c.files {
		c.drop(k)
	}
}
