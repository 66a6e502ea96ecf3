package workload

import (
	"slices"
	"sync"
	"time"
)

// Result is what one run of a workload measured.
type Result struct {
	// Ops is the operations done: appends that succeeded, queries read, or
	// scans.
	Ops int
	// Events is the events those operations appended or read.
	Events int
	// Elapsed is the wall time of the measured section (setup excluded).
	Elapsed time.Duration
	// Failures counts conditional appends whose condition failed. In
	// ConditionalAppend each writer owns its tag, so any failure is a bug
	// in the store under test; the workload goes on and reports them.
	Failures int
	// P50 and P99 are the median and 99th percentile latency of one
	// operation; zero where the workload does not time operations one by
	// one (Load, FullScan).
	P50, P99 time.Duration
}

// OpsPerSec is Ops per second of Elapsed; 0 when nothing was timed.
func (r Result) OpsPerSec() float64 { return perSec(r.Ops, r.Elapsed) }

// EventsPerSec is Events per second of Elapsed; 0 when nothing was timed.
func (r Result) EventsPerSec() float64 { return perSec(r.Events, r.Elapsed) }

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// setPercentiles sets r.P50 and r.P99 from lat, which it sorts.
func (r *Result) setPercentiles(lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	r.P50 = lat[(len(lat)-1)/2]
	r.P99 = lat[(len(lat)-1)*99/100]
}

// Progress is told how many more operations a workload has done since its
// previous call (appends, queries, or events scanned). A workload calls it
// from one goroutine at a time, every progressEvery operations or so and
// once at the end, so it needs no locking of its own. nil: no progress.
type Progress func(done int)

// progressEvery is how many operations a workload does between calls to its
// Progress: rare enough to cost nothing next to the operations timed.
const progressEvery = 64

// progressCounter batches progress reports from concurrent goroutines into
// serialized calls of a Progress.
type progressCounter struct {
	mu      sync.Mutex
	report  Progress
	pending int
}

func newProgressCounter(p Progress) *progressCounter { return &progressCounter{report: p} }

// add records n more operations done and reports them once enough are
// pending.
func (c *progressCounter) add(n int) {
	if c.report == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending += n
	if c.pending >= progressEvery {
		c.report(c.pending)
		c.pending = 0
	}
}

// flush reports what is pending.
func (c *progressCounter) flush() {
	if c.report == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending > 0 {
		c.report(c.pending)
		c.pending = 0
	}
}
