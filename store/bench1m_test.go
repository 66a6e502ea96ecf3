package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/rawdisk"
)

// BenchmarkStore1M builds a store of POSSUM_BENCH_EVENTS events (default 1M)
// with 3 tags each, appended 10 at a time by 8 writers, and reports, as
// ratios to this machine's limits where there is one:
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
func BenchmarkStore1M(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("POSSUM_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	students := n / 10 // each student tag: exactly 10 events
	dir := b.TempDir()
	ctx := context.Background()
	s := openBench(b, dir, &Options{NoSync: true})
	event := func(i int) dcb.Event {
		return dcb.Event{Type: "StudentSubscribed", Data: benchData, Tags: []string{
			"course:" + strconv.Itoa(i%10_000), "student:" + strconv.Itoa(i%students), "tenant:" + strconv.Itoa(i%10)}}
	}
	const writers, batch = 8, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := w * batch; k < n; k += writers * batch {
				events := make([]dcb.Event, 0, batch)
				for i := k; i < min(k+batch, n); i++ {
					events = append(events, event(i))
				}
				if _, err := s.Append(ctx, events, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
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
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchReopenChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "POSSUM_BENCH_REOPEN="+filepath.Join(dir, "store"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("reopen child: %v\n%s", err, out)
	}
	var reopen time.Duration
	var rssKB, scanned int64
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "REOPEN %d %d %d", &reopen, &rssKB, &scanned); err == nil {
			break
		}
	}
	if reopen == 0 {
		b.Fatalf("reopen child printed no result:\n%s", out)
	}
	b.ReportMetric(float64(reopen.Milliseconds()), "reopen-ms")
	b.ReportMetric(float64(rssKB)/1024, "reopen-rss-MB")
	b.ReportMetric(float64(scanned), "reopen-scanned-records")

	s = openBench(b, dir, nil)
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, 20_000)
	for range cap(lat) {
		q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"student:" + strconv.Itoa(rng.IntN(students))}}}}
		t := time.Now()
		got := 0
		for _, err := range s.Read(ctx, q, ReadOptions{}) {
			if err != nil {
				b.Fatal(err)
			}
			got++
		}
		lat = append(lat, time.Since(t))
		if got != 10 {
			b.Fatalf("read %d events of a student, want 10", got)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "tag10-p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "tag10-p99-µs")

	start = time.Now()
	count := 0
	for _, err := range s.Read(ctx, dcb.All(), ReadOptions{}) {
		if err != nil {
			b.Fatal(err)
		}
		count++
	}
	if count != n {
		b.Fatalf("scanned %d events, want %d", count, n)
	}
	b.ReportMetric(float64(count)/time.Since(start).Seconds(), "scan-events/s")
}

// TestBenchReopenChild is not a test: BenchmarkStore1M runs it in a fresh
// process to open a store and report the time, resident memory and WAL
// records scanned.
func TestBenchReopenChild(t *testing.T) {
	dir := os.Getenv("POSSUM_BENCH_REOPEN")
	if dir == "" {
		return
	}
	start := time.Now()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	runtime.GC()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var rss int64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%d", &rss)
		}
	}
	fmt.Printf("REOPEN %d %d %d\n", took, rss, s.OpenReport().WAL.ScannedRecords)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
