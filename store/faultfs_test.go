package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// errInjected is the error faultFS returns.
var errInjected = errors.New("injected fault")

// faultFS passes every call to the FS under it but the nth of one kind
// ("open", "write", "fsync", "rename", "remove", "truncate", "syncdir",
// "syncfs"), which fails once with errInjected. A failing write writes
// half of its bytes first, as a full disk may.
type faultFS struct {
	under vfs.FS
	kind  string
	nth   int

	mu    sync.Mutex
	seen  int
	fired bool
}

var _ vfs.FS = (*faultFS)(nil)

func (f *faultFS) fail(kind string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if kind != f.kind || f.fired {
		return false
	}
	f.seen++
	f.fired = f.seen == f.nth
	return f.fired
}

func (f *faultFS) Fired() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

func (f *faultFS) OpenFile(name string, flag int, perm os.FileMode) (vfs.File, error) {
	if f.fail("open") {
		return nil, errInjected
	}
	file, err := f.under.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{fs: f, File: file}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if f.fail("rename") {
		return errInjected
	}
	return f.under.Rename(oldpath, newpath)
}

func (f *faultFS) Remove(name string) error {
	if f.fail("remove") {
		return errInjected
	}
	return f.under.Remove(name)
}

func (f *faultFS) RemoveAll(path string) error {
	if f.fail("remove") {
		return errInjected
	}
	return f.under.RemoveAll(path)
}

func (f *faultFS) Truncate(name string, size int64) error {
	if f.fail("truncate") {
		return errInjected
	}
	return f.under.Truncate(name, size)
}

func (f *faultFS) MkdirAll(path string, perm os.FileMode) error { return f.under.MkdirAll(path, perm) }

func (f *faultFS) SyncDir(dir string) error {
	if f.fail("syncdir") {
		return errInjected
	}
	return f.under.SyncDir(dir)
}

func (f *faultFS) SyncFS(path string) error {
	if f.fail("syncfs") {
		return errInjected
	}
	return f.under.SyncFS(path)
}

type faultFile struct {
	fs *faultFS
	vfs.File
}

func (f *faultFile) Write(b []byte) (int, error) {
	if f.fs.fail("write") {
		n, _ := f.File.Write(b[:len(b)/2])
		return n, errInjected
	}
	return f.File.Write(b)
}

func (f *faultFile) Sync() error {
	if f.fs.fail("fsync") {
		return errInjected
	}
	return f.File.Sync()
}

// TestProjectionFaults fails one projector file system call of each kind,
// early and later in a store's life: the projector reports the error, the
// WAL keeps every event, and the projection it retries ends whole and
// consistent, with no index entry written twice.
func TestProjectionFaults(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"open", "write", "fsync", "rename", "syncdir", "syncfs"} {
		for _, nth := range []int{1, 2, 7, 40} {
			t.Run(fmt.Sprintf("%s#%d", kind, nth), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				ffs := &faultFS{under: vfs.OS, kind: kind, nth: nth}
				s, err := store.OpenFS(dir, nil, ffs)
				require.NoError(t, err)
				var last uint64
				for i := range 30 {
					batch := []dcb.Event{{Type: fmt.Sprintf("T%d", i%3), Tags: []string{fmt.Sprintf("k:%d", i%4), "all"}}, {Type: "U"}}
					last, err = s.Append(t.Context(), batch, nil)
					require.NoError(t, err)
				}
				// The projector retries on every wake-up: a last append
				// (and the checkpoint ticker) makes sure there is one.
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				for s.WaitProjected(ctx, last) != nil || s.Stats().ProjectorErr != nil {
					require.NoError(t, ctx.Err(), "the projection never recovered: %v", s.Stats().ProjectorErr)
					last, err = s.Append(t.Context(), []dcb.Event{{Type: "Nudge"}}, nil)
					require.NoError(t, err)
				}
				evs := readAll(t, s, dcb.All(), store.ReadOptions{})
				if err := s.Close(); err != nil {
					// The fault hit Close's last checkpoint, and Close said
					// so: the next Open starts from the one before.
					require.ErrorIs(t, err, errInjected)
					s, err = store.Open(dir, nil)
					require.NoError(t, err)
					closeProjected(t, s)
				}
				projectiontest.RequireMatches(t, dir, evs)
				rep, err := recovery.Verify(dir, nil)
				require.NoError(t, err)
				assert.True(t, rep.Consistent(), "possum verify: %+v", rep.Problems)
				if kind == "open" || kind == "write" || kind == "rename" || nth == 1 {
					// Hundreds of these calls, or at least one checkpoint: the fault fired.
					assert.True(t, ffs.Fired(), "the %s #%d fault never fired", kind, nth)
				}
			})
		}
	}
}
