package store_test

// Benchmarks of what users care about, reported as ratios of this machine's
// own limits measured in the same run: the machine is shared and noisy, so
// "events/s" alone means little, "events/s ÷ raw fsyncs/s" a lot. The
// workloads are those of internal/benchkit/workload, which `possum bench` and the
// peer module under bench/ run too.
//
//	go test -run XXX -bench . -benchtime 2s ./store
//
// They run only with -bench; plain `go test` compiles them and nothing more.

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/benchkit/rawdisk"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/store"
)

// rawFsyncTime is how long the raw fsync rate is measured for each run of an
// append benchmark: half before the store is opened, half after it is
// closed, so that the baseline brackets the run without possum's own load
// (the projector's file writes share the file system journal) in it.
const rawFsyncTime = 300 * time.Millisecond

// benchSeed seeds the data of the loaded stores and the order of reads.
const benchSeed = 1

// measureRawFsync measures the raw fsync rate of dir's file system for half
// of rawFsyncTime.
func measureRawFsync(b *testing.B, dir string) float64 {
	b.Helper()
	rate, err := rawdisk.FsyncRate(dir, rawFsyncTime/2)
	if err != nil {
		b.Fatal(err)
	}
	return rate
}

func openBench(b *testing.B, dir string, opts *store.Options) *store.Store {
	b.Helper()
	s, err := store.Open(filepath.Join(dir, "store"), opts)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// appendBench is one run of an append benchmark: a durable store in a fresh
// directory, with the raw fsync rate measured around it.
type appendBench struct {
	b         *testing.B
	dir       string
	s         *store.Store
	rawBefore float64
}

func startAppendBench(b *testing.B) *appendBench {
	b.Helper()
	a := &appendBench{b: b, dir: b.TempDir()}
	a.rawBefore = measureRawFsync(b, a.dir)
	a.s = openBench(b, a.dir, nil)
	b.Cleanup(func() { a.s.Close() })
	return a
}

// finish, called once the timer has stopped, closes the store and reports:
//
//   - events/s (and appends/s for batches) of w, and its latency p50/p99;
//   - raw-fsync/s, the mean of the raw rates measured before Open and after
//     Close, and x-raw-fsync = events/s ÷ raw-fsync/s;
//   - raw-drift = (after-before)/mean: far from 0, the machine's load
//     changed during the run and the ratio is not to be trusted;
//   - projected/s, the projector's pace (event files written) during the
//     run, and close-s, how long Close took.
func (a *appendBench) finish(w workload.Result) {
	b := a.b
	b.Helper()
	if w.Failures > 0 {
		b.Fatalf("%d conditions failed: each writer owns its tag", w.Failures)
	}
	st := a.s.Stats()
	if st.Commits > 0 {
		b.ReportMetric(float64(st.CommittedAppends)/float64(st.Commits), "appends/commit")
		b.ReportMetric(float64(st.MeanCommit.Microseconds()), "commit-µs")
	}
	t := time.Now()
	if err := a.s.Close(); err != nil {
		b.Fatal(err)
	}
	closeSecs := time.Since(t).Seconds()
	rawAfter := measureRawFsync(b, a.dir)
	secs := w.Elapsed.Seconds()
	if secs == 0 {
		return
	}
	raw := (a.rawBefore + rawAfter) / 2
	eps := w.EventsPerSec()
	b.ReportMetric(eps, "events/s")
	if w.Ops != w.Events {
		b.ReportMetric(w.OpsPerSec(), "appends/s")
	}
	b.ReportMetric(float64(w.P50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(w.P99.Microseconds()), "p99-µs")
	b.ReportMetric(raw, "raw-fsync/s")
	b.ReportMetric(eps/raw, "x-raw-fsync")
	b.ReportMetric((rawAfter-a.rawBefore)/raw, "raw-drift")
	b.ReportMetric(float64(st.Projected)/secs, "projected/s")
	b.ReportMetric(closeSecs, "close-s")
}

// BenchmarkAppendConditional: 1, 8 or 64 goroutines append one event at a
// time, durably, each on the condition that nothing happened to its own tag
// since its previous append (workload.ConditionalAppend). One writer waits
// for its own fsync each time, so its ceiling is about 1x the raw fsync
// rate; group commit lets more writers share fsyncs, so events/s should
// grow with them.
func BenchmarkAppendConditional(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			a := startAppendBench(b)
			b.ResetTimer()
			w, err := workload.ConditionalAppend(context.Background(), a.s, writers, (b.N+writers-1)/writers, nil)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			a.finish(w)
		})
	}
}

// BenchmarkAppendBatch100: one goroutine appends batches of 100 events,
// durably, without condition (workload.Batches).
func BenchmarkAppendBatch100(b *testing.B) {
	a := startAppendBench(b)
	b.ResetTimer()
	w, err := workload.Batches(context.Background(), a.s, b.N, 100, benchSeed, nil)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	a.finish(w)
}

// The 1M-event index of BenchmarkConditionCheck1M, built once per process.
// Event i (position i+1) has type "Type<(i/3)%10>" and the tags
// course:<i%10000>, student:<i%50000> and tenant:<i%10>. Both the type and
// the tenant follow from i%30, so each tenant only ever sees 3 of the 10
// types: a type+tenant query can match nothing at all.
var (
	index1MOnce sync.Once
	index1M     *indexer.Index
)

const index1MSize = 1_000_000

func conditionIndex(b *testing.B) *indexer.Index {
	b.Helper()
	index1MOnce.Do(func() {
		types := make([]string, 10)
		for t := range types {
			types[t] = fmt.Sprintf("Type%d", t)
		}
		x := indexer.New()
		for i := range index1MSize {
			e := dcb.Event{Type: types[(i/3)%10], Tags: []string{
				fmt.Sprintf("course:%d", i%10000),
				fmt.Sprintf("student:%d", i%50000),
				fmt.Sprintf("tenant:%d", i%10),
			}}
			if err := x.Add(uint64(i+1), e); err != nil {
				panic(err)
			}
		}
		index1M = x
	})
	return index1M
}

// lastIndexed is the last position of x matching q: what a decider that
// just read q's events passes as After.
func lastIndexed(x *indexer.Index, q dcb.Query) uint64 {
	p, _ := x.Cursor(q, 1, ^uint64(0), true).Next()
	return p
}

// BenchmarkConditionCheck1M measures the in-memory condition check Append
// makes under the writer lock (indexer.FirstAfter) on an index of 1M events.
// Every case but "tag-conflict" is an append that passes (nothing matches
// after After), which is the case that has to look hardest.
func BenchmarkConditionCheck1M(b *testing.B) {
	x := conditionIndex(b)
	items := func(its ...dcb.QueryItem) dcb.Query { return dcb.Query{Items: its} }
	course := dcb.QueryItem{Tags: []string{"course:4242"}}                         // 100 events
	courseStudent := dcb.QueryItem{Tags: []string{"course:4242", "student:14242"}} // 20 events
	cases := []struct {
		name  string
		q     dcb.Query
		after func(q dcb.Query) uint64
		fails bool
	}{
		{name: "tag", q: items(course)},
		{name: "tag-conflict", q: items(course), fails: true,
			after: func(q dcb.Query) uint64 { return lastIndexed(x, q) - 1 }},
		{name: "two-tags", q: items(courseStudent)},
		{name: "type+tag", q: items(dcb.QueryItem{Types: []string{"Type4"}, Tags: []string{"course:4242"}})},
		// The DCB course-subscription condition: the course's events and
		// the student's subscriptions.
		{name: "two-items", q: items(
			dcb.QueryItem{Types: []string{"Type0", "Type4", "Type7"}, Tags: []string{"course:4242"}},
			dcb.QueryItem{Types: []string{"Type4"}, Tags: []string{"student:14242"}},
		)},
		// A type+tag query on a tag that 100k events carry.
		{name: "type+hot-tag", q: items(dcb.QueryItem{Types: []string{"Type3"}, Tags: []string{"tenant:0"}})},
		// The same where the type never occurs with the tag ("no
		// TenantClosed in tenant 0, ever"): every one of the tag's 100k
		// positions is looked at.
		{name: "type+hot-tag-never", q: items(dcb.QueryItem{Types: []string{"Type1"}, Tags: []string{"tenant:0"}}),
			after: func(dcb.Query) uint64 { return 0 }},
	}
	for _, c := range cases {
		after := lastIndexed(x, c.q)
		if c.after != nil {
			after = c.after(c.q)
		}
		if _, got := x.FirstAfter(c.q, after); got != c.fails {
			b.Fatalf("%s: FirstAfter(after %d) = %v, want %v", c.name, after, got, c.fails)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, got := x.FirstAfter(c.q, after); got != c.fails {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

// readShape is the store the read benchmarks read: 100k events of
// workload.Shape, each order tag carrying exactly 10 of them.
var readShape = workload.Shape{Events: 100_000, Seed: benchSeed}

// readStore is a store for the read benchmarks, with what its build showed of
// the projector.
type readStore struct {
	*store.Store
	projected float64 // events/s the projector wrote files for, from the first append until it caught up
	rawCreate float64 // rawdisk.FileCreateRate of the same file system, just before
}

// report reports the build's figures; call it after the timed loop (the
// timer's reset clears metrics). No ratio of the two: raw-create/s is the
// rate in a fresh directory, which on ext4 can be several times slower than
// in one that already took thousands of files (see rawdisk.FileCreateRate),
// as events/ has by the end of the build.
func (r readStore) report(b *testing.B) {
	b.ReportMetric(r.projected, "proj-catchup/s")
	b.ReportMetric(r.rawCreate, "raw-create/s")
}

// buildReadStore fills a NoSync store with readShape, appended in batches of
// batch events (workload.Load; batch 1: one WAL record per event). It
// returns once the projector has caught up, so that the reads run on a
// quiet store.
func buildReadStore(b *testing.B, batch int) readStore {
	b.Helper()
	dir := b.TempDir()
	rawCreate, err := rawdisk.FileCreateRate(dir, 300*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	s := openBench(b, dir, &store.Options{NoSync: true})
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	start := time.Now()
	if _, err := workload.Load(ctx, s, readShape, batch, nil); err != nil {
		b.Fatal(err)
	}
	if err := s.WaitProjected(ctx, s.Head()); err != nil {
		b.Fatal(err)
	}
	return readStore{Store: s, projected: float64(readShape.Events) / time.Since(start).Seconds(), rawCreate: rawCreate}
}

// readLayouts: the 100k store as batches of 1000 events (one WAL record per
// 1000 events) and as single-event appends (one record per event).
var readLayouts = []struct {
	name  string
	batch int
}{{"batch1000", 1000}, {"batch1", 1}}

// BenchmarkReadByTag reads the 10 events of one tag (a random tag each
// time) from a 100k-event store (workload.ReadByTag).
func BenchmarkReadByTag(b *testing.B) {
	for _, l := range readLayouts {
		b.Run(l.name, func(b *testing.B) {
			s := buildReadStore(b, l.batch)
			b.ResetTimer()
			w, err := workload.ReadByTag(context.Background(), s, readShape, b.N, nil)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(w.OpsPerSec(), "reads/s")
			b.ReportMetric(float64(w.P50.Microseconds()), "p50-µs")
			b.ReportMetric(float64(w.P99.Microseconds()), "p99-µs")
			s.report(b)
		})
	}
}

// BenchmarkFullScan reads every event of a 100k-event store, appended in
// batches of 1000 (the single-event layout scans about as fast; building it
// costs more than it teaches).
func BenchmarkFullScan(b *testing.B) {
	for _, l := range readLayouts[:1] {
		b.Run(l.name, func(b *testing.B) {
			s := buildReadStore(b, l.batch)
			var events int
			var took time.Duration
			b.ResetTimer()
			for range b.N {
				w, err := workload.FullScan(context.Background(), s, nil)
				if err != nil {
					b.Fatal(err)
				}
				events += w.Events
				took += w.Elapsed
			}
			b.StopTimer()
			b.ReportMetric(float64(events)/took.Seconds(), "events/s")
			s.report(b)
		})
	}
}
