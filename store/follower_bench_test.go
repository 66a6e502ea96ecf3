package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/internal/testkit/testenv"
	"github.com/possumstore/possum/store"
)

// The follower benchmarks run followers in child processes of the test
// binary, as other processes on the machine would. Run them once each:
//
//	go test -run XXX -bench Follower -benchtime 1x ./store

const followBenchChildEnv = "POSSUM_TEST_FOLLOW_BENCH_CHILD"

func init() { child.Register(followBenchChildEnv, runFollowBenchChild) }

// runFollowBenchChild follows the store named by "mode:dir:n":
//   - latency: prints "<position> <wall clock ns>" as each event arrives;
//   - catchup: prints "<seconds>" once Follow and a Subscribe from 0 have
//     delivered n events;
//   - consume: follows until killed, printing "ready" once following.
func runFollowBenchChild(arg string) {
	parts := strings.SplitN(arg, ":", 3)
	mode, dir := parts[0], parts[1]
	n, _ := strconv.ParseUint(parts[2], 10, 64)
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	start := time.Now()
	f, err := store.Follow(dir, nil)
	if err != nil {
		fail(err)
	}
	if mode == "consume" || mode == "latency" {
		fmt.Fprintln(w, "ready")
		w.Flush()
	}
	for e, err := range f.Subscribe(context.Background(), dcb.All(), 0) {
		if err != nil {
			fail(err)
		}
		switch mode {
		case "latency":
			fmt.Fprintln(w, e.Position, time.Now().UnixNano())
			w.Flush()
		case "catchup":
			if e.Position == n {
				fmt.Fprintln(w, time.Since(start).Seconds())
				w.Flush()
				os.Exit(0)
			}
		}
	}
	fail(fmt.Errorf("subscription ended"))
}

// startFollowBenchChild starts a follower child and waits for its "ready"
// when the mode prints one.
func startFollowBenchChild(b *testing.B, mode, dir string, n int) (*exec.Cmd, *bufio.Scanner) {
	b.Helper()
	cmd := child.Command(followBenchChildEnv, fmt.Sprintf("%s:%s:%d", mode, dir, n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	if mode != "catchup" && (!sc.Scan() || sc.Text() != "ready") {
		b.Fatalf("follower child: %q", sc.Text())
	}
	return cmd, sc
}

// BenchmarkFollowerLatency: a follower in another process, a durable
// writer appending 1,000 events/s (4 paced appenders): the time from an
// append's acknowledgement to its delivery, p50 and p99.
func BenchmarkFollowerLatency(b *testing.B) {
	const rate, seconds, appenders = 1000, 3, 4
	dir := b.TempDir()
	s, err := store.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	_, sc := startFollowBenchChild(b, "latency", dir, 0)
	n := rate * seconds
	acked := make([]int64, n+1)
	var wg sync.WaitGroup
	b.ResetTimer()
	for a := range appenders {
		wg.Go(func() {
			tick := time.NewTicker(time.Second * appenders / rate) // pacing the load
			defer tick.Stop()
			for range n / appenders {
				<-tick.C
				last, err := s.Append(context.Background(), []dcb.Event{{Type: "Paced", Tags: []string{fmt.Sprint("a:", a)}}}, nil)
				if err != nil {
					b.Error(err)
					return
				}
				acked[last] = time.Now().UnixNano()
			}
		})
	}
	lat := make([]time.Duration, 0, n)
	for len(lat) < n && sc.Scan() {
		var pos uint64
		var at int64
		if _, err := fmt.Sscan(sc.Text(), &pos, &at); err != nil {
			b.Fatalf("follower child: %q", sc.Text())
		}
		lat = append(lat, time.Duration(at)) // resolved below, once every ack is known
		_ = pos
	}
	wg.Wait()
	b.StopTimer()
	// Lines came in position order: line i is position i+1.
	for i := range lat {
		lat[i] = max(0, lat[i]-time.Duration(acked[i+1]))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkFollowerCatchUp: a follower in another process reads a store of
// POSSUM_BENCH_EVENTS events (default 1,000,000) from position 0; its rate
// next to an in-process full scan of the same store in the same run.
func BenchmarkFollowerCatchUp(b *testing.B) {
	n := testenv.Int(b, "POSSUM_BENCH_EVENTS", 1_000_000)
	dir := b.TempDir()
	s, err := store.Open(dir, &store.Options{NoSync: true, Projection: &store.Projection{}})
	if err != nil {
		b.Fatal(err)
	}
	shape := workload.Shape{Events: n, Seed: benchSeed}
	if _, err := workload.Load(context.Background(), s, shape, 1000, nil); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	count := 0
	for _, err := range s.Read(context.Background(), dcb.All(), store.ReadOptions{}) {
		if err != nil {
			b.Fatal(err)
		}
		count++
	}
	scan := float64(count) / time.Since(start).Seconds()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	_, sc := startFollowBenchChild(b, "catchup", dir, n)
	if !sc.Scan() {
		b.Fatal("the follower child stopped")
	}
	secs, err := strconv.ParseFloat(sc.Text(), 64)
	if err != nil {
		b.Fatalf("follower child: %q", sc.Text())
	}
	b.StopTimer()
	follow := float64(n) / secs
	b.ReportMetric(follow, "follower-events/s")
	b.ReportMetric(scan, "scan-events/s")
	b.ReportMetric(follow/scan, "ratio")
}

// BenchmarkFollowerCost: 64 conditional writers on a durable store alone,
// then with 8 followers in other processes: the rate with them over the
// rate without.
func BenchmarkFollowerCost(b *testing.B) {
	const writers, perWriter, followers = 64, 300, 8
	run := func(withFollowers bool) float64 {
		dir := b.TempDir()
		s, err := store.Open(dir, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if withFollowers {
			for range followers {
				startFollowBenchChild(b, "consume", dir, 0)
			}
		}
		r, err := workload.ConditionalAppend(context.Background(), s, writers, perWriter, nil)
		if err != nil {
			b.Fatal(err)
		}
		return r.OpsPerSec()
	}
	b.ResetTimer()
	alone := run(false)
	with := run(true)
	alone = (alone + run(false)) / 2 // around the run with followers: the machine drifts
	b.ReportMetric(alone, "alone-appends/s")
	b.ReportMetric(with, "8-followers-appends/s")
	b.ReportMetric(with/alone, "ratio")
}
