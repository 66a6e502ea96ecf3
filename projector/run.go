package projector

import (
	"math"
	"path/filepath"
	"runtime"
	"time"

	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/platform"
	"github.com/possumstore/possum/storedir"
)

// rateWindow is how much of its own work time the projector's rate
// remembers: the measure follows a change of pace within about this long.
const rateWindow = 10 * time.Second

// rateMeter measures a rate over work time, not wall time, so that an idle
// projector keeps the rate it had when it last worked: sums of events and
// of busy seconds, each decayed by exp(-busy/rateWindow) as work goes on.
type rateMeter struct {
	events, busy float64
}

// observe adds n events written in d of work.
func (m *rateMeter) observe(n uint64, d time.Duration) {
	if d < 0 {
		d = 0
	}
	w := math.Exp(-d.Seconds() / rateWindow.Seconds())
	m.events = m.events*w + float64(n)
	m.busy = m.busy*w + d.Seconds()
}

// perSecond returns the events per second of work, 0 when unknown.
func (m *rateMeter) perSecond() float64 {
	if m.busy <= 0 || m.events <= 0 {
		return 0
	}
	return m.events / m.busy
}

// Start runs the projector goroutine.
func (p *Projector) Start() { go p.run() }

// SetClock makes the projector measure its rate with now instead of
// time.Now: for tests that give its work a known duration.
func (p *Projector) SetClock(now func() time.Time) { p.clock.Store(&now) }

func (p *Projector) now() time.Time {
	if c := p.clock.Load(); c != nil {
		return (*c)()
	}
	return time.Now()
}

// measure adds n events written since start to the rate.
func (p *Projector) measure(n uint64, start time.Time) {
	p.rate.observe(n, p.now().Sub(start))
	p.rateBits.Store(math.Float64bits(p.rate.perSecond()))
}

// Stop stops the projector without waiting for its backlog: it stops within
// stopCheckEvery event files, leaves a snapshot of the
// index as far as it projected and a checkpoint there, and returns. The next
// Open projects the rest in the background, from the WAL.
func (p *Projector) Stop() error {
	close(p.stop)
	<-p.done
	return p.Err()
}

func (p *Projector) run() {
	defer close(p.done)
	// Projection is background work: on its own thread at a lower CPU
	// priority, its file system calls (inode allocation costs a CPU here)
	// yield to the writer's. Best effort: an error leaves the priority as is.
	runtime.LockOSThread()
	_ = platform.LowerThreadPriority(projectorNice)
	defer p.files.closeAll()
	ticker := time.NewTicker(checkpointEvery)
	defer ticker.Stop()
	lastCheckpoint := time.Now()
	for {
		stopping := false
		select {
		case <-p.wake:
		case <-ticker.C:
		case <-p.stop:
			stopping = true
		}
		var err error
		if p.eventsUnchecked && !stopping {
			// A stop first leaves the listing to the next Open (and
			// writes no checkpoint: see below).
			err = p.checkEventsLate()
		}
		if err == nil && p.indexUnchecked {
			// Even when stopping (one stat per type and tag): without
			// it no checkpoint could follow, and the repairs of this
			// Open would be done again by the next. A select that
			// finds the first round's wake and the stop both ready
			// picks either.
			err = p.checkIndexLate()
		}
		if err == nil && !stopping {
			err = p.catchUp()
		}
		if err == nil && stopping {
			// A clean stop leaves the whole index in one file, so the next
			// Open reads it instead of every index file.
			err = indexer.WriteSnapshot(p.fs, filepath.Join(p.dir, storedir.IndexDir, storedir.SnapshotFile),
				filepath.Join(p.dir, storedir.TmpDir, storedir.SnapshotFile), p.idx, p.projected.Load())
			p.dirty = true // the checkpoint below makes the snapshot durable
		}
		// A checkpoint vouches for every file at or below it: none while
		// event files are still to be listed or rewritten, or index files
		// to be checked (a stop can come first).
		if err == nil && !p.eventsUnchecked && !p.indexUnchecked && len(p.missing) == 0 &&
			(p.dirty || p.projected.Load() > p.checkpointed.Load()) &&
			(stopping || time.Since(lastCheckpoint) >= checkpointEvery) {
			start := p.now()
			err = p.checkpoint()
			lastCheckpoint = time.Now()
			// Its sync is part of what writing the files costs.
			p.measure(0, start)
		}
		p.setErr(err)
		if stopping {
			return
		}
	}
}

// Stopping returns a channel closed when Stop is called.
func (p *Projector) Stopping() <-chan struct{} { return p.stop }

func (p *Projector) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

func (p *Projector) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && (p.lastErr == nil || p.lastErr.Error() != err.Error()) {
		p.lg.Error("possum: projection failed; the WAL holds every event, retrying", "dir", p.dir, "err", err)
	}
	p.lastErr = err
}

// catchUp projects batches until the WAL's head is reached, or until it is
// asked to stop: then it returns within stopCheckEvery event files.
func (p *Projector) catchUp() error {
	for len(p.missing) > 0 {
		if p.stopped() {
			return nil
		}
		n := min(len(p.missing), batchSize)
		if err := p.rewrite(p.missing[:n]); err != nil {
			return err
		}
		p.missing = p.missing[n:]
		p.setHoles()
	}
	for {
		from, head := p.projected.Load()+1, p.log.LastPosition()
		if from > head {
			return nil
		}
		if p.stopped() {
			return nil
		}
		start := p.now()
		to, err := p.project(from, min(head, from+batchSize-1))
		if err != nil {
			return err
		}
		p.measure(to-from+1, start)
		p.projected.Store(to)
		p.advance()
	}
}
