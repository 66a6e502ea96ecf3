package store_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/store"
)

// BenchmarkBackup1M backs up a store of POSSUM_BENCH_EVENTS events (default
// 1M, of workload.Shape, appended 10 at a time, no projection files) into a
// fresh directory, then again (nothing new), and reports the seconds each
// took and the ratio of the first to `cp -r` of the store's wal/ directory
// measured in the same run: x-cp, and to cp -r then sync -f of the copy,
// x-cp+sync (a backup is on disk when it returns; lower is faster).
func BenchmarkBackup1M(b *testing.B) {
	n := testenv.Int(b, "POSSUM_BENCH_EVENTS", 1_000_000)
	ctx := context.Background()
	dir := b.TempDir()
	s := openBench(b, dir, &store.Options{NoSync: true, Projection: &store.Projection{}})
	if _, err := workload.Load(ctx, s, workload.Shape{Events: n, Seed: benchSeed}, 10, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		dst := filepath.Join(b.TempDir(), "backup")
		start := time.Now()
		if _, err := s.Backup(ctx, dst); err != nil {
			b.Fatal(err)
		}
		first := time.Since(start)
		start = time.Now()
		if _, err := s.Backup(ctx, dst); err != nil {
			b.Fatal(err)
		}
		again := time.Since(start)
		start = time.Now()
		cp := exec.Command("cp", "-r", filepath.Join(s.Dir(), "wal"), filepath.Join(b.TempDir(), "wal"))
		if out, err := cp.CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		cpTime := time.Since(start)
		// cp leaves its copy in the page cache; a backup is on disk when
		// it returns. cp then sync of the copy's file system, as a fair
		// second limit.
		start = time.Now()
		cpDst := filepath.Join(b.TempDir(), "wal")
		if out, err := exec.Command("cp", "-r", filepath.Join(s.Dir(), "wal"), cpDst).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		if out, err := exec.Command("sync", "-f", cpDst).CombinedOutput(); err != nil {
			b.Fatalf("sync: %v: %s", err, out)
		}
		cpSyncTime := time.Since(start)
		b.ReportMetric(first.Seconds(), "backup-s")
		b.ReportMetric(again.Seconds(), "again-s")
		b.ReportMetric(cpTime.Seconds(), "cp-s")
		b.ReportMetric(cpSyncTime.Seconds(), "cp+sync-s")
		b.ReportMetric(first.Seconds()/cpTime.Seconds(), "x-cp")
		b.ReportMetric(first.Seconds()/cpSyncTime.Seconds(), "x-cp+sync")
	}
}
