// Package testdir holds directory helpers shared by the tests of several
// packages.
//
// It is internal/testkit: tests only.
package testdir

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/require"
)

// Tmpfs returns a fresh directory on /dev/shm when there is one (unless
// POSSUM_TEST_DISK is set), else t.TempDir(). For tests of many thousands of
// event files whose subject is not the disk (rename atomicity as inotify
// sees it, what Open scans): file creation on the shared disk runs at about
// a thousand files a second, on tmpfs some thirty times faster.
func Tmpfs(t testing.TB) string {
	t.Helper()
	if os.Getenv("POSSUM_TEST_DISK") == "" {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			if dir, err := os.MkdirTemp("/dev/shm", "possum-test-"); err == nil {
				t.Cleanup(func() { _ = os.RemoveAll(dir) })
				return dir
			}
		}
	}
	return t.TempDir()
}

// Hash returns every file and directory under dir with a hash of its
// content: equal maps mean nothing was changed, added or removed.
func Hash(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			m[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		m[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	require.NoError(t, err)
	return m
}

// CopyStore copies the store directory src to dst. Event files are hard
// links: a store and a repair only ever replace them (write a temp file,
// rename), so a test that damages the copy removes or rewrites them, never
// writes them in place. Everything else is copied.
func CopyStore(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		if filepath.Dir(rel) == storedir.EventsDir {
			return os.Link(path, target)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o640)
	})
	require.NoError(t, err)
}
