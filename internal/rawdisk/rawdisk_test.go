package rawdisk

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFsyncRate(t *testing.T) {
	dir := t.TempDir()
	rate, err := FsyncRate(dir, 50*time.Millisecond)
	require.NoError(t, err)
	require.Greater(t, rate, 0.0)
	requireEmpty(t, dir)
}

func TestFileCreateRate(t *testing.T) {
	dir := t.TempDir()
	rate, err := FileCreateRate(dir, 50*time.Millisecond)
	require.NoError(t, err)
	require.Greater(t, rate, 0.0)
	requireEmpty(t, dir)
}

func TestMissingDir(t *testing.T) {
	missing := t.TempDir() + "/missing"
	_, err := FsyncRate(missing, time.Millisecond)
	require.Error(t, err)
	_, err = FileCreateRate(missing, time.Millisecond)
	require.Error(t, err)
}

func requireEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)
}
