package rawdisk

import (
	"os"
	"path/filepath"
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

func TestSyncWriteBandwidth(t *testing.T) {
	dir := t.TempDir()
	rate, err := SyncWriteBandwidth(dir, 20*time.Millisecond)
	require.NoError(t, err)
	require.Positive(t, rate)
	requireEmpty(t, dir)
}

func TestReadRates(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	require.NoError(t, os.WriteFile(a, make([]byte, 3000), 0o600))
	require.NoError(t, os.WriteFile(b, make([]byte, 10), 0o600))
	rate, err := RandomReadRate([]string{a, b}, 200, 10*time.Millisecond, 1)
	require.NoError(t, err)
	require.Positive(t, rate)
	bw, err := SequentialReadBandwidth([]string{a, b}, 10*time.Millisecond)
	require.NoError(t, err)
	require.Positive(t, bw)

	_, err = RandomReadRate([]string{b}, 200, time.Millisecond, 1)
	require.Error(t, err, "fewer bytes than one read")
	_, err = RandomReadRate([]string{filepath.Join(dir, "missing")}, 1, time.Millisecond, 1)
	require.Error(t, err)
	_, err = SequentialReadBandwidth(nil, time.Millisecond)
	require.Error(t, err)
}

func TestMissingDir(t *testing.T) {
	missing := t.TempDir() + "/missing"
	_, err := FsyncRate(missing, time.Millisecond)
	require.Error(t, err)
	_, err = FileCreateRate(missing, time.Millisecond)
	require.Error(t, err)
	_, err = SyncWriteBandwidth(missing, time.Millisecond)
	require.Error(t, err)
}

func requireEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries)
}

// BenchmarkRates reports the machine's raw rates (go test -bench . -benchtime 1x
// ./internal/benchkit/rawdisk): each run measures for a second.
func BenchmarkRates(b *testing.B) {
	for _, m := range []struct {
		name, unit string
		rate       func(string, time.Duration) (float64, error)
	}{{"fsync", "fsync/s", FsyncRate}, {"file-create", "files/s", FileCreateRate},
		{"sync-write", "bytes/s", SyncWriteBandwidth}} {
		b.Run(m.name, func(b *testing.B) {
			dir := b.TempDir()
			var sum float64
			for b.Loop() {
				r, err := m.rate(dir, time.Second)
				if err != nil {
					b.Fatal(err)
				}
				sum += r
			}
			b.ReportMetric(sum/float64(b.N), m.unit)
		})
	}
}
