package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/internal/benchkit/rawdisk"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/store"
)

// BenchmarkStore1M builds a store of POSSUM_BENCH_EVENTS events (default 1M)
// of workload.Shape (each order tag carries exactly 10 events), appended 10
// at a time (workload.Load, NoSync), and reports, as ratios to this
// machine's limits where there is one:
//
//   - proj-files/s and x-raw-create: the projector's pace catching up on a
//     backlog, against raw temp-write-and-rename file creation in the same
//     directory tree;
//   - reopen-ms and reopen-rss-MB: a fresh process opening the closed store
//     (its resident memory once open, with the whole index in memory);
//   - tag10-p50-µs, tag10-p99-µs: reading the 10 events of one tag;
//   - scan-events/s: reading every event.
//
// It takes minutes (a million files to write and delete): run it alone,
//
//	go test -run XXX -bench Store1M -benchtime 1x ./store
//
// `possum bench` measures the same and more.
func BenchmarkStore1M(b *testing.B) {
	n := testenv.Int(b, "POSSUM_BENCH_EVENTS", 1_000_000)
	sh := workload.Shape{Events: n, Seed: benchSeed}
	dir := b.TempDir()
	ctx := context.Background()
	s := openBench(b, dir, &store.Options{NoSync: true})
	if _, err := workload.Load(ctx, s, sh, 10, nil); err != nil {
		b.Fatal(err)
	}
	// The projector lagged behind the appends; time its catch-up alone.
	backlog, start := s.Head()-s.Stats().Projected, time.Now()
	if err := s.WaitProjected(ctx, s.Head()); err != nil {
		b.Fatal(err)
	}
	projRate := float64(backlog) / time.Since(start).Seconds()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	rawCreate, err := rawdisk.FileCreateRate(dir, 2*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(projRate, "proj-files/s")
	b.ReportMetric(rawCreate, "raw-create/s")
	b.ReportMetric(projRate/rawCreate, "x-raw-create")

	// Reopen in a fresh process: its time and resident memory are the
	// store's, not this builder's.
	out, err := child.Command(reopenEnv, filepath.Join(dir, "store")).Output()
	if err != nil {
		b.Fatalf("reopen child: %v\n%s", err, out)
	}
	var child reopenResult
	if err := json.Unmarshal(out, &child); err != nil {
		b.Fatalf("reopen child printed %q: %v", out, err)
	}
	b.ReportMetric(float64(child.Elapsed.Milliseconds()), "reopen-ms")
	b.ReportMetric(float64(child.RSS)/(1<<20), "reopen-rss-MB")
	b.ReportMetric(float64(child.ScannedRecords), "reopen-scanned-records")

	s = openBench(b, dir, nil)
	defer s.Close()
	w, err := workload.ReadByTag(ctx, s, sh, 20_000, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(w.P50.Nanoseconds())/1e3, "tag10-p50-µs")
	b.ReportMetric(float64(w.P99.Nanoseconds())/1e3, "tag10-p99-µs")

	scan, err := workload.FullScan(ctx, s, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(scan.EventsPerSec(), "scan-events/s")
}

// reopenEnv names the store runBenchReopenChild opens.
const reopenEnv = "POSSUM_BENCH_REOPEN"

func init() { child.Register(reopenEnv, runBenchReopenChild) }

// reopenResult is what runBenchReopenChild prints.
type reopenResult struct {
	workload.Reopen
	ScannedRecords int
}

// runBenchReopenChild is the child process BenchmarkStore1M runs to open
// the store in dir in a fresh process and print the time, resident memory
// and WAL records scanned, as JSON.
func runBenchReopenChild(dir string) {
	die := func(err error) {
		fmt.Fprintln(os.Stderr, "reopen child:", err)
		os.Exit(3)
	}
	r, s, err := workload.MeasureOpen(func() (workload.Store, error) { return store.Open(dir, nil) })
	if err != nil {
		die(err)
	}
	res := reopenResult{Reopen: r, ScannedRecords: s.(*store.Store).OpenReport().WAL.ScannedRecords}
	if err := s.Close(); err != nil {
		die(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		die(err)
	}
	os.Stdout.Write(append(b, '\n'))
}
