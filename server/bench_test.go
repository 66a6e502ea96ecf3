package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// appender is what the append benchmark drives: the store itself or a
// client of its server.
type appender interface {
	Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error)
}

// appendRates holds the events/s of each sub-benchmark of
// BenchmarkAppend64, for their ratio.
var appendRates sync.Map

// BenchmarkAppend64: 64 writers make durable (fsync'd) conditional appends
// of one event each, each writer under a condition on its own tag:
// embedded, and through the server on the unix socket, the writers sharing
// one client ("socket": their appends travel together) or each with its
// own ("socket-64-clients": a request per append, as 64 processes would
// make). Reported as
// events/s, and, once both ran, as the socket's ratio to the embedded rate
// of the same run (the disk here drifts several-fold within minutes, so
// compare ratios, not figures across runs). With
// POSSUM_BENCH_NO_PROJECTION set, the stores write no projection files:
// the faster a run, the more of the projector's work falls after it, which
// favours the embedded runs; without it, the ratio is the HTTP path's
// alone. Run:
//
//	go test -run XXX -bench Append64 -benchtime 20000x -v ./server
func BenchmarkAppend64(b *testing.B) {
	for _, name := range []string{"embedded", "socket", "socket-64-clients", "embedded-again"} {
		b.Run(name, func(b *testing.B) {
			var opts *store.Options
			if os.Getenv("POSSUM_BENCH_NO_PROJECTION") != "" {
				opts = &store.Options{Projection: &store.Projection{}}
			}
			st, err := store.Open(filepath.Join(b.TempDir(), "s"), opts)
			if err != nil {
				b.Fatal(err)
			}
			s := serveStore(b, st, nil)
			writer := func(int) appender { return s.st }
			switch name {
			case "socket":
				c := s.dial(b, nil)
				writer = func(int) appender { return c }
			case "socket-64-clients":
				var clients []appender
				for range 64 {
					clients = append(clients, s.dial(b, nil))
				}
				writer = func(w int) appender { return clients[w] }
			}
			b.ReportMetric(append64(b, writer), "events/s")
			stats := s.st.Stats()
			b.ReportMetric(float64(stats.CommittedAppends)/float64(max(stats.Commits, 1)), "appends/fsync")
			b.ReportMetric(float64(stats.MeanCommit.Microseconds()), "µs/fsync")
		})
	}
	e1, ok1 := appendRates.Load("embedded")
	sock, ok2 := appendRates.Load("socket")
	sock64, ok3 := appendRates.Load("socket-64-clients")
	e2, ok4 := appendRates.Load("embedded-again")
	if ok1 && ok2 && ok3 && ok4 {
		embedded := (e1.(float64) + e2.(float64)) / 2
		b.Logf("embedded %.0f events/s (mean of the runs before and after); socket, one client %.0f (ratio %.2f), 64 clients %.0f (ratio %.2f)",
			embedded, sock.(float64), sock.(float64)/embedded, sock64.(float64), sock64.(float64)/embedded)
	}
}

func append64(b *testing.B, writer func(int) appender) float64 {
	const writers = 64
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			a := writer(w)
			tag := fmt.Sprintf("writer:%d", w)
			q := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}
			var last uint64
			for next.Add(1) <= int64(b.N) {
				pos, err := a.Append(ctx, []dcb.Event{{Type: "Appended", Tags: []string{tag}, Data: []byte(`{"n":1}`)}},
					&dcb.AppendCondition{FailIfEventsMatch: q, After: last})
				if err != nil {
					b.Error(err)
					return
				}
				last = pos
			}
		})
	}
	wg.Wait()
	rate := float64(b.N) / time.Since(start).Seconds()
	appendRates.Store(b.Name()[len("BenchmarkAppend64/"):], rate)
	return rate
}

// BenchmarkReadByTag10: reads of a tag's 10 events through the server on
// the unix socket, by the Go client (the NDJSON stream) and by a plain
// HTTP GET /read, with 8 concurrent readers; queries/s and the p99 latency.
// Embedded reads of the same store, for scale.
func BenchmarkReadByTag10(b *testing.B) {
	const tags, readers = 1000, 8
	s := serve(b, nil)
	batch := make([]dcb.Event, 0, 1000)
	for i := range 10 * tags {
		batch = append(batch, dcb.Event{Type: "T", Tags: []string{fmt.Sprintf("t:%d", i%tags)}, Data: []byte(`{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)})
		if len(batch) == cap(batch) {
			if _, err := s.st.Append(context.Background(), batch, nil); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	// The projector's files of the load are not what is measured.
	if err := s.st.WaitProjected(context.Background(), s.st.Head()); err != nil {
		b.Fatal(err)
	}
	c := s.dial(b, nil)
	read := map[string]func(ctx context.Context, tag string) (int, error){
		"embedded": func(ctx context.Context, tag string) (int, error) {
			n := 0
			for _, err := range s.st.Read(ctx, dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}, store.ReadOptions{}) {
				if err != nil {
					return n, err
				}
				n++
			}
			return n, nil
		},
		"client": func(ctx context.Context, tag string) (int, error) {
			n := 0
			for _, err := range c.Read(ctx, dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}, store.ReadOptions{}) {
				if err != nil {
					return n, err
				}
				n++
			}
			return n, nil
		},
		"http-read": func(ctx context.Context, tag string) (int, error) {
			return httpRead(ctx, s, tag)
		},
	}
	for _, name := range []string{"embedded", "client", "http-read"} {
		b.Run(name, func(b *testing.B) {
			var next atomic.Int64
			lat := make([][]time.Duration, readers)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for r := range readers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						t0 := time.Now()
						n, err := read[name](context.Background(), fmt.Sprintf("t:%d", i%tags))
						lat[r] = append(lat[r], time.Since(t0))
						if err != nil || n != 10 {
							b.Errorf("read %d events: %v", n, err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "queries/s")
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			}
		})
	}
}
