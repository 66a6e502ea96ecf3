package wal

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkEvent reads one event at a random position (as a selective query
// does) and every event in order (as a scan does) from a log of 100k events
// appended one per record or 1000 per record, with mapped segments and with
// positional reads.
//
//	go test -run XXX -bench BenchmarkEvent ./wal
func BenchmarkEvent(b *testing.B) {
	const events = 100_000
	for _, batch := range []int{1, 1000} {
		dir := b.TempDir()
		l := openLog(b, dir, Options{NoSync: true})
		var recs []Record
		for p := uint64(1); p <= events; p += uint64(batch) {
			r := genRecord(p)
			r.Events = r.Events[:0]
			for i := range batch {
				r.Events = append(r.Events, genRecord(p + uint64(i)).Events[0])
			}
			recs = append(recs, r)
			if len(recs) == 100 || p+uint64(batch) > events {
				if err := l.Append(recs); err != nil {
					b.Fatal(err)
				}
				recs = recs[:0]
			}
		}
		for _, m := range readModes {
			l.pread = m.pread
			b.Run(fmt.Sprintf("batch%d/%s/random", batch, m.name), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				rd := l.NewReader()
				for b.Loop() {
					if _, err := rd.Event(1 + rng.Uint64N(events)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("batch%d/%s/scan", batch, m.name), func(b *testing.B) {
				rd := l.NewReader()
				p := uint64(0)
				for b.Loop() {
					p = p%events + 1
					if _, err := rd.Event(p); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
