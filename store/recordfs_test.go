package store_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/possumstore/possum/internal/sys/vfs"
)

// recordingFS is the vfs.FS of the power-loss child: it passes every call to
// the FS under it and writes it, as it happens, to w (the child's stdout,
// shared with the acknowledgements under mu), so that the parent can replay
// the calls after a kill -9 and work out what a power cut could have left.
//
// Each call is two lines: "fs B <id> <op> <args>" before the call (with
// every byte a write carries) and "fs E <id> <ok|err>" after it. A call with
// no B line never ran (the B line is written first, and a failed write of it
// skips the call); a call with a B line and no E line may have run, wholly,
// partly or not at all; only a sync with an "ok" E line made anything
// durable. Paths are relative to the store directory.
//
// With checkpointBeforeSync the FS breaks the checkpoint protocol on
// purpose: SyncFS does nothing and is put off until the next SyncDir of the
// store directory returns, that is until after the checkpoint it should
// have preceded is written: the build whose checkpoint vouches for files a
// power cut may still take. The power-loss loop must catch it.
type recordingFS struct {
	root  string
	under vfs.FS
	mu    *sync.Mutex
	w     io.Writer

	checkpointBeforeSync bool
	syncFSDue            bool

	next int // op ids, under mu
}

var _ vfs.FS = (*recordingFS)(nil)

func newRecordingFS(root string, under vfs.FS, mu *sync.Mutex, w io.Writer, checkpointBeforeSync bool) *recordingFS {
	return &recordingFS{root: root, under: under, mu: mu, w: w, checkpointBeforeSync: checkpointBeforeSync}
}

// begin writes the B line of an op and returns its id.
func (r *recordingFS) begin(op string, args ...string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	line := fmt.Sprintf("fs B %d %s %s\n", r.next, op, strings.Join(args, " "))
	if _, err := io.WriteString(r.w, line); err != nil {
		return 0, fmt.Errorf("recording fs: %w", err)
	}
	return r.next, nil
}

// end writes the E line of op id and returns err.
func (r *recordingFS) end(id int, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := "ok"
	if err != nil {
		res = "err"
	}
	if _, werr := fmt.Fprintf(r.w, "fs E %d %s\n", id, res); werr != nil && err == nil {
		err = fmt.Errorf("recording fs: %w", werr)
	}
	return err
}

func (r *recordingFS) rel(path string) string {
	rel, err := filepath.Rel(r.root, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		panic(fmt.Sprintf("recording fs: %s is outside the store %s", path, r.root))
	}
	return strconv.Quote(filepath.ToSlash(rel))
}

func (r *recordingFS) call(fn func() error, op string, args ...string) error {
	id, err := r.begin(op, args...)
	if err != nil {
		return err
	}
	return r.end(id, fn())
}

func (r *recordingFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	id, err := r.begin("open", strconv.Itoa(flag), r.rel(name))
	if err != nil {
		return nil, err
	}
	f, err := r.under.OpenFile(name, flag, perm)
	var off int64
	if err == nil && flag&os.O_APPEND != 0 {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			off = st.Size()
		} else {
			f.Close()
		}
	}
	if err := r.end(id, err); err != nil {
		return nil, err
	}
	return &recordingFile{fs: r, id: id, f: f, off: off}, nil
}

func (r *recordingFS) Rename(oldpath, newpath string) error {
	return r.call(func() error { return r.under.Rename(oldpath, newpath) }, "rename", r.rel(oldpath), r.rel(newpath))
}

func (r *recordingFS) Remove(name string) error {
	return r.call(func() error { return r.under.Remove(name) }, "remove", r.rel(name))
}

func (r *recordingFS) RemoveAll(path string) error {
	return r.call(func() error { return r.under.RemoveAll(path) }, "removeall", r.rel(path))
}

func (r *recordingFS) Truncate(name string, size int64) error {
	return r.call(func() error { return r.under.Truncate(name, size) }, "truncate", r.rel(name), strconv.FormatInt(size, 10))
}

func (r *recordingFS) MkdirAll(path string, perm os.FileMode) error {
	return r.call(func() error { return r.under.MkdirAll(path, perm) }, "mkdirall", r.rel(path))
}

func (r *recordingFS) SyncDir(dir string) error {
	if err := r.call(func() error { return r.under.SyncDir(dir) }, "syncdir", r.rel(dir)); err != nil {
		return err
	}
	if r.syncFSDue && dir == r.root {
		r.syncFSDue = false
		return r.call(func() error { return r.under.SyncFS(r.root) }, "syncfs", r.rel(r.root))
	}
	return nil
}

func (r *recordingFS) SyncFS(path string) error {
	if r.checkpointBeforeSync {
		r.syncFSDue = true // the broken build: the checkpoint goes first
		return nil
	}
	return r.call(func() error { return r.under.SyncFS(path) }, "syncfs", r.rel(path))
}

// recordingFile records the writes and syncs of one open file; id is the op
// id of its open. off tracks where its next write lands, so each write line
// says where its bytes went.
type recordingFile struct {
	fs  *recordingFS
	id  int
	f   vfs.File
	off int64
}

func (f *recordingFile) Write(b []byte) (int, error) {
	id, err := f.fs.begin("write", strconv.Itoa(f.id), strconv.FormatInt(f.off, 10), base64.StdEncoding.EncodeToString(b))
	if err != nil {
		return 0, err
	}
	n, err := f.f.Write(b)
	f.off += int64(n)
	return n, f.fs.end(id, err)
}

func (f *recordingFile) Sync() error {
	return f.fs.call(f.f.Sync, "fsync", strconv.Itoa(f.id))
}

func (f *recordingFile) Close() error               { return f.f.Close() }
func (f *recordingFile) Stat() (os.FileInfo, error) { return f.f.Stat() }
