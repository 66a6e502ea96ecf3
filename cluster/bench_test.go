package cluster

// Measures of a store on JetStream (issue 21), each reported as a ratio of
// what JetStream itself does on the same servers in the same run: the
// machine is shared and noisy, so events/s alone means little. Run them
// without the race detector, one measurement each:
//
//	go test -run XXX -bench Cluster -benchtime 1x ./cluster
//
// POSSUM_CLUSTER_BENCH_SECONDS sets how long each rate is measured (3),
// POSSUM_CLUSTER_BENCH_EVENTS the size of the stream a new node catches up
// from (1,000,000); POSSUM_CLUSTER_BENCH_IDS=1 gives every event an ID
// (the nodes then check each append for a retry, and the replicas index
// the IDs). They run only with -bench.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func benchDuration() time.Duration {
	return time.Duration(benchEnv("POSSUM_CLUSTER_BENCH_SECONDS", 3)) * time.Second
}

// benchIDs says whether the benchmark events carry IDs.
func benchIDs() bool { return os.Getenv("POSSUM_CLUSTER_BENCH_IDS") != "" }

// benchID is the ID of a benchmark event, "" unless benchIDs.
func benchID(format string, args ...any) string {
	if !benchIDs() {
		return ""
	}
	return fmt.Sprintf(format, args...)
}

// benchData is the data of one benchmark event: about 100 bytes.
var benchData = []byte(`{"writer":7,"sku":"SKU-000042","quantity":1,"cents":1999,"at":"2026-11-26T10:00:00Z","note":"x"}`)

// BenchmarkClusterAppend: conditional appends of one event each (every
// writer's condition on its own tag, so none fails), 64 closed-loop
// writers per node, on one node and on three, on the shared R3 cluster;
// against JetStream's own rate for conditional atomic batches of the same
// size (the nodes' mean batch, the same message bytes) from as many
// publishers, each retrying at the head a refusal names. Also on servers
// that fsync every write (sync_interval: always).
func BenchmarkClusterAppend(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			benchAppend(b, sharedCluster(b), nodes)
		})
	}
	b.Run("nodes=3,sync=always", func(b *testing.B) {
		c := &testCluster{}
		for i, sp := range clusterSpecs(b, 3, b.TempDir()) {
			sp.SyncAlways = true
			c.servers = append(c.servers, &testServer{spec: sp, child: i == childServer})
		}
		b.Cleanup(c.shutdown)
		for _, ts := range c.servers {
			if err := ts.start(); err != nil {
				b.Fatal(err)
			}
		}
		if err := waitR3(c.url()); err != nil {
			b.Fatal(err)
		}
		benchAppend(b, c.url(), 3)
	})
}

func benchAppend(b *testing.B, url string, nodes int) {
	stream := newStreamName()
	ns := make([]*Node, nodes)
	for i := range ns {
		ns[i] = openNodeWith(b, b.TempDir(), &Options{URL: url, Stream: stream, Replicas: 3, Store: benchStoreOpts()})
	}
	// The machine is shared: measure the nodes and JetStream alone in
	// turns, twice, so that both see the same weather.
	half := benchDuration() / 2
	var appends, rawEvents, rawBatches, rawRefusals int
	var nodeTime, rawTime time.Duration
	var st Stats
	b.ResetTimer()
	for turn := range 2 {
		k, d := appendLoad(b, ns, turn, half)
		appends, nodeTime = appends+k, nodeTime+d
		st = sumStats(ns)
		size := max(1, int(math.Round(float64(st.Events)/float64(st.Batches))))
		e, bs, r, d := rawConditionalBatches(b, url, nodes, size, half)
		rawEvents, rawBatches, rawRefusals, rawTime = rawEvents+e, rawBatches+bs, rawRefusals+r, rawTime+d
	}
	b.StopTimer()
	rate := float64(appends) / nodeTime.Seconds()
	raw := float64(rawEvents) / rawTime.Seconds()
	b.ReportMetric(rate, "appends/s")
	b.ReportMetric(float64(st.Events)/float64(st.Batches), "events/batch")
	b.ReportMetric(float64(st.Conflicts)/float64(st.Batches), "retries/batch")
	b.ReportMetric(raw, "js-events/s")
	b.ReportMetric(float64(rawRefusals)/float64(max(1, rawBatches)), "js-retries/batch")
	b.ReportMetric(rate/raw, "x-js")
}

// appendLoad runs 64 closed-loop writers per node for d, each appending
// one event at a time under a condition on its own tag, and returns the
// appends acknowledged and the time they took.
func appendLoad(b *testing.B, ns []*Node, turn int, d time.Duration) (int, time.Duration) {
	const writers = 64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stop := time.Now().Add(d)
	var appends, failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i, n := range ns {
		for w := range writers {
			wg.Go(func() {
				tag := fmt.Sprintf("writer:%d.%d.%d", turn, i, w)
				q := tagQuery(tag)
				var after uint64
				for k := 0; time.Now().Before(stop); k++ {
					pos, err := n.Append(ctx, []dcb.Event{{Type: "OrderPlaced", Tags: []string{tag}, Data: benchData, ID: benchID("%s/%d", tag, k)}},
						&dcb.AppendCondition{FailIfEventsMatch: q, After: after})
					if errors.Is(err, dcb.ErrAppendConditionFailed) {
						failures.Add(1)
						continue
					}
					if err != nil {
						b.Error(err)
						return
					}
					after = pos
					appends.Add(1)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failures.Load() > 0 {
		b.Fatalf("%d conditions failed where none can", failures.Load())
	}
	return int(appends.Load()), elapsed
}

// rawConditionalBatches measures JetStream alone for d: publishers
// publishing atomic batches of size possum messages in a closed loop, each
// expecting the last position it knows and, refused, trying again at the
// one the refusal names. It returns the events and batches committed, the
// refusals, and the time taken.
func rawConditionalBatches(b *testing.B, url string, publishers, size int, d time.Duration) (int, int, int, time.Duration) {
	stream := newStreamName()
	js := jsFor(b, url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, streamConfig(stream, stream, 3)); err != nil {
		b.Fatal(err)
	}
	var events, batches, refusals atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for p := range publishers {
		wg.Go(func() {
			nc, err := nats.Connect(url)
			if err != nil {
				b.Error(err)
				return
			}
			defer nc.Close()
			pjs, _ := jetstream.New(nc)
			var last uint64
			for time.Now().Before(stop) {
				msgs := rawBatch(b, stream, p, size, last)
				ack, err := jetstreamext.PublishMsgBatch(ctx, pjs, msgs, jetstreamext.BatchFlowControl{})
				if apiCode(err) == errCodeWrongLastSequence {
					refusals.Add(1)
					last = wrongLastSequence(err)
					continue
				}
				if err != nil {
					b.Error(err)
					return
				}
				last = ack.Sequence
				batches.Add(1)
				events.Add(int64(size))
			}
		})
	}
	wg.Wait()
	return int(events.Load()), int(batches.Load()), int(refusals.Load()), time.Since(start)
}

// rawBatch returns size messages as a node would publish them, the first
// expecting last.
func rawBatch(b *testing.B, stream string, p, size int, last uint64) []*nats.Msg {
	msgs := make([]*nats.Msg, size)
	id := fmt.Sprintf("raw%d-%d", p, last)
	for i := range msgs {
		m, err := encodeEvent(stream, streamEvent{Event: dcb.Event{Type: "OrderPlaced", Tags: []string{fmt.Sprintf("writer:%d.%d", p, i)}, Data: benchData,
			ID: benchID("%s/%d", id, i), Timestamp: time.Now()}})
		if err != nil {
			b.Fatal(err)
		}
		setBatch(m, id, i == 0, size)
		msgs[i] = m
	}
	msgs[0].Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(last, 10))
	return msgs
}

// BenchmarkClusterLatency: 1,000 appends a second across three nodes,
// each append started on time whatever the ones before it do (an open
// loop, so a slow append delays none after it), each conditional on a tag
// of its own. Reports the latency of one append, p50 and p99.
func BenchmarkClusterLatency(b *testing.B) {
	const nodes, perSecond = 3, 1000
	url := sharedCluster(b)
	stream := newStreamName()
	ns := make([]*Node, nodes)
	for i := range ns {
		ns[i] = openNode(b, url, stream, b.TempDir(), 3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	total := int(benchDuration().Seconds()) * perSecond
	lat := make([]time.Duration, total)
	var wg sync.WaitGroup
	interval := time.Second / perSecond
	start := time.Now()
	b.ResetTimer()
	for k := range total {
		time.Sleep(time.Until(start.Add(time.Duration(k) * interval))) // pacing the open loop
		n := ns[k%nodes]
		wg.Go(func() {
			tag := fmt.Sprintf("order:%d", k)
			t0 := time.Now()
			_, err := n.Append(ctx, []dcb.Event{{Type: "OrderPlaced", Tags: []string{tag}, Data: benchData, ID: benchID("%s", tag)}},
				&dcb.AppendCondition{FailIfEventsMatch: tagQuery(tag)})
			lat[k] = time.Since(t0)
			if err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	achieved := float64(total) / time.Since(start).Seconds()
	slices.Sort(lat)
	b.ReportMetric(achieved, "appends/s")
	b.ReportMetric(float64(lat[(total-1)/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(lat[(total-1)*99/100].Microseconds())/1e3, "p99-ms")
}

// BenchmarkClusterCatchUp: a new node on an empty directory catches up
// from a stream of POSSUM_CLUSTER_BENCH_EVENTS events (R3), against a
// plain ordered consumer reading the same stream. The replica writes no
// event or index files here (the projection follows in the background and
// is not what is measured).
func BenchmarkClusterCatchUp(b *testing.B) {
	events := benchEnv("POSSUM_CLUSTER_BENCH_EVENTS", 1_000_000)
	url := sharedCluster(b)
	stream := newStreamName()
	js := jsFor(b, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, streamConfig(stream, stream, 3)); err != nil {
		b.Fatal(err)
	}
	fillStart := time.Now()
	var last uint64
	for last < uint64(events) {
		size := min(MaxAppendEvents, events-int(last))
		msgs := rawBatch(b, stream, 0, size, last)
		ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs, jetstreamext.BatchFlowControl{})
		if err != nil {
			b.Fatal(err)
		}
		last = ack.Sequence
	}
	fill := float64(events) / time.Since(fillStart).Seconds()

	b.ResetTimer()
	readStart := time.Now()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(applyMaxBytes))
	if err != nil {
		b.Fatal(err)
	}
	var bytes int
	for range events {
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		bytes += len(m.Data())
	}
	it.Stop()
	read := float64(events) / time.Since(readStart).Seconds()

	applyStart := time.Now()
	n := openNodeWith(b, b.TempDir(), &Options{URL: url, Stream: stream, Store: &store.Options{Projection: &store.Projection{}}})
	if _, err := n.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	apply := float64(events) / time.Since(applyStart).Seconds()
	b.StopTimer()
	st := n.ClusterStats()
	b.ReportMetric(fill, "fill-events/s")
	b.ReportMetric(read, "read-events/s")
	b.ReportMetric(apply, "catchup-events/s")
	b.ReportMetric(apply/read, "x-read")
	b.ReportMetric(float64(st.AppliedEvents)/float64(st.Applies), "events/apply")
}

func benchStoreOpts() *store.Options {
	if os.Getenv("POSSUM_CLUSTER_BENCH_NOPROJ") != "" {
		return &store.Options{Projection: &store.Projection{}}
	}
	return nil
}
