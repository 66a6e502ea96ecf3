package store

// Benchmarks of what users care about, reported as ratios of this machine's
// own limits measured in the same run: the machine is shared and noisy, so
// "events/s" alone means little, "events/s ÷ raw fsyncs/s" a lot.
//
//	go test -run XXX -bench . -benchtime 2s ./store
//
// They run only with -bench; plain `go test` compiles them and nothing more.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/rawdisk"
)

// rawFsyncTime is how long the raw fsync rate is measured for each run of a
// benchmark: half just before its timed section, half just after, so that the
// baseline brackets what it is compared with on a machine whose load changes.
const rawFsyncTime = 300 * time.Millisecond

var benchData = json.RawMessage(`{"course":"c1","student":"s1","at":"2026-11-26T10:00:00Z"}`)

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

// reportAppendMetrics reports events/s (and appends/s for batches) of the
// timed section, the raw fsync rate (the mean of the measurements before and
// after it), their ratio, and how much the raw rate moved meanwhile
// (raw-drift: (after-before)/mean; far from 0, the ratio is not to be
// trusted).
func reportAppendMetrics(b *testing.B, events, appends int, rawBefore, rawAfter float64, batch bool) {
	secs := b.Elapsed().Seconds()
	if secs == 0 {
		return
	}
	raw := (rawBefore + rawAfter) / 2
	eps := float64(events) / secs
	b.ReportMetric(eps, "events/s")
	if batch {
		b.ReportMetric(float64(appends)/secs, "appends/s")
	}
	b.ReportMetric(raw, "raw-fsync/s")
	b.ReportMetric(eps/raw, "x-raw-fsync")
	b.ReportMetric((rawAfter-rawBefore)/raw, "raw-drift")
}

func openBench(b *testing.B, dir string, opts *Options) *Store {
	b.Helper()
	s, err := Open(filepath.Join(dir, "store"), opts)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func tagCondition(tag string, after uint64) *dcb.AppendCondition {
	return &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}, After: after}
}

// BenchmarkAppendOneWriter: one goroutine appends one event at a time,
// durably, each on the condition that nothing happened to its tag since its
// previous append. Each append waits for its own fsync, so the ceiling is
// about 1x the raw fsync rate.
func BenchmarkAppendOneWriter(b *testing.B) {
	dir := b.TempDir()
	s := openBench(b, dir, nil)
	defer s.Close()
	ctx := context.Background()
	const tag = "writer:0"
	rawBefore := measureRawFsync(b, dir)
	var last uint64
	for b.Loop() {
		ev := []dcb.Event{{Type: "StudentSubscribed", Tags: []string{tag}, Data: benchData}}
		pos, err := s.Append(ctx, ev, tagCondition(tag, last))
		if err != nil {
			b.Fatal(err)
		}
		last = pos
	}
	reportAppendMetrics(b, b.N, b.N, rawBefore, measureRawFsync(b, dir), false)
}

// BenchmarkAppend64Writers: 64 goroutines append one event at a time,
// durably, each on a condition on its own tag: group commit lets them share
// fsyncs, so events/s should be many times the raw fsync rate.
func BenchmarkAppend64Writers(b *testing.B) {
	const writers = 64
	dir := b.TempDir()
	s := openBench(b, dir, nil)
	defer s.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := make(chan struct{})
	for w := range writers {
		n := b.N / writers
		if w < b.N%writers {
			n++
		}
		tag := fmt.Sprintf("writer:%d", w)
		wg.Go(func() {
			<-start
			var last uint64
			for range n {
				ev := []dcb.Event{{Type: "StudentSubscribed", Tags: []string{tag}, Data: benchData}}
				pos, err := s.Append(ctx, ev, tagCondition(tag, last))
				if err != nil {
					errs <- err
					return
				}
				last = pos
			}
		})
	}
	rawBefore := measureRawFsync(b, dir)
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	rawAfter := measureRawFsync(b, dir)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if got := s.Head(); got != uint64(b.N) {
		b.Fatalf("head %d after %d appends", got, b.N)
	}
	reportAppendMetrics(b, b.N, b.N, rawBefore, rawAfter, false)
}

// BenchmarkAppendBatch100: one goroutine appends batches of 100 events,
// durably, without condition.
func BenchmarkAppendBatch100(b *testing.B) {
	const batch = 100
	dir := b.TempDir()
	s := openBench(b, dir, nil)
	defer s.Close()
	ctx := context.Background()
	events := make([]dcb.Event, batch)
	for i := range events {
		events[i] = dcb.Event{Type: "StudentSubscribed", Tags: []string{fmt.Sprintf("student:%d", i)}, Data: benchData}
	}
	rawBefore := measureRawFsync(b, dir)
	for b.Loop() {
		if _, err := s.Append(ctx, events, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportAppendMetrics(b, b.N*batch, b.N, rawBefore, measureRawFsync(b, dir), true)
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

// lastMatch is the last position matching q: what a decider that just read
// q's events passes as After.
func lastMatch(x *indexer.Index, q dcb.Query) uint64 {
	p, _ := x.Cursor(q, 1, ^uint64(0), true).Next()
	return p
}

// BenchmarkConditionCheck1M measures the in-memory condition check Append
// makes under the writer lock (indexer.AnyAfter) on an index of 1M events.
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
			after: func(q dcb.Query) uint64 { return lastMatch(x, q) - 1 }},
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
		after := lastMatch(x, c.q)
		if c.after != nil {
			after = c.after(c.q)
		}
		if got := x.AnyAfter(c.q, after); got != c.fails {
			b.Fatalf("%s: AnyAfter(after %d) = %v, want %v", c.name, after, got, c.fails)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if x.AnyAfter(c.q, after) != c.fails {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}

const (
	readStoreSize = 100_000
	readTags      = 10_000 // order:<k%readTags>: each tag has exactly 10 events
)

// buildReadStore fills a NoSync store with readStoreSize events, appended in
// batches of batch events; batch 1 appends them one by one from several
// goroutines (one WAL record per event).
func buildReadStore(b *testing.B, batch int) *Store {
	b.Helper()
	s := openBench(b, b.TempDir(), &Options{NoSync: true})
	ctx := context.Background()
	event := func(k int) dcb.Event {
		return dcb.Event{Type: "OrderPlaced", Tags: []string{fmt.Sprintf("order:%d", k%readTags)}, Data: benchData}
	}
	if batch > 1 {
		for k := 0; k < readStoreSize; k += batch {
			events := make([]dcb.Event, 0, batch)
			for j := k; j < min(k+batch, readStoreSize); j++ {
				events = append(events, event(j))
			}
			if _, err := s.Append(ctx, events, nil); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		const workers = 16
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for k := w; k < readStoreSize; k += workers {
					if _, err := s.Append(ctx, []dcb.Event{event(k)}, nil); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	if s.Head() != readStoreSize {
		b.Fatalf("head %d, want %d", s.Head(), readStoreSize)
	}
	return s
}

// readLayouts: the 100k store as batches of 1000 events (one WAL record per
// 1000 events) and as single-event appends (one record per event).
var readLayouts = []struct {
	name  string
	batch int
}{{"batch1000", 1000}, {"batch1", 1}}

// BenchmarkReadByTag reads the 10 events of one tag (a different tag each
// time) from a 100k-event store.
func BenchmarkReadByTag(b *testing.B) {
	queries := make([]dcb.Query, readTags)
	for k := range queries {
		queries[k] = dcb.Query{Items: []dcb.QueryItem{{Tags: []string{fmt.Sprintf("order:%d", k)}}}}
	}
	for _, l := range readLayouts {
		b.Run(l.name, func(b *testing.B) {
			s := buildReadStore(b, l.batch)
			defer s.Close()
			ctx := context.Background()
			i := 0
			for b.Loop() {
				n := 0
				for _, err := range s.Read(ctx, queries[i%readTags], ReadOptions{}) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != readStoreSize/readTags {
					b.Fatalf("read %d events, want %d", n, readStoreSize/readTags)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}

// BenchmarkFullScan reads every event of a 100k-event store.
func BenchmarkFullScan(b *testing.B) {
	for _, l := range readLayouts {
		b.Run(l.name, func(b *testing.B) {
			s := buildReadStore(b, l.batch)
			defer s.Close()
			ctx := context.Background()
			for b.Loop() {
				n := 0
				for _, err := range s.Read(ctx, dcb.All(), ReadOptions{}) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				if n != readStoreSize {
					b.Fatalf("read %d events, want %d", n, readStoreSize)
				}
			}
			b.ReportMetric(float64(b.N)*readStoreSize/b.Elapsed().Seconds(), "events/s")
		})
	}
}
