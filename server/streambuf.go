package server

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errSlowReader ends a stream whose client fell behind while the streams
// together held all the bytes they may.
var errSlowReader = errors.New("server: this stream's client fell behind while the server's streams held all the memory they may (Options.StreamsBufferBytes): subscribe again after the last event received")

// streamPool bounds the bytes of the event lines all following streams
// have queued: encoded, and not yet taken by the stream's writer. Each
// stream also holds the one line its writer is writing, as a read holds
// the event it writes.
type streamPool struct {
	mu     sync.Mutex
	limit  int64
	used   int64                   // under mu: the bytes queued
	peak   int64                   // under mu: the most used, for tests
	slow   int64                   // under mu: streams ended as slow readers
	queues map[*lineQueue]struct{} // under mu: the streams running
}

func newStreamPool(limit int64) *streamPool {
	return &streamPool{limit: limit, queues: map[*lineQueue]struct{}{}}
}

// A lineQueue holds the lines of one stream between its subscription,
// which puts them, and the handler, which writes them to the client, one
// at a time. The stream holds at most limit bytes, queued and being
// written (a longer line goes alone), and the pool bounds the bytes queued
// by all streams together.
type lineQueue struct {
	pool  *streamPool
	limit int64
	// Under pool.mu.
	lines  [][]byte // queued, not yet taken by the writer
	queued int64    // the bytes of lines
	held   int64    // queued, and the line being written
	end    error    // set: no more lines; the writer ends the stream with it
	closed bool     // the writer stopped (the client went away)
	// progress is when the client last took a line (or the stream
	// began): the slowest reader is the one whose progress is oldest.
	progress time.Time
	// Signals, capacity 1.
	ready chan struct{} // lines or the end wait for the writer
	room  chan struct{} // the writer wrote a line, or the stream ended
}

func (p *streamPool) newQueue(limit int64) *lineQueue {
	q := &lineQueue{pool: p, limit: limit, progress: time.Now(), ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	p.mu.Lock()
	p.queues[q] = struct{}{}
	p.mu.Unlock()
	return q
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// put queues line for the writer. It waits while the stream holds its
// limit: the subscription slows to its client's pace. When the line would
// take the streams' queues past the pool's limit, the slowest reader with
// lines queued (this stream, maybe) is ended, its queued lines dropped,
// until the line fits. false: the stream ends (ctx ended,
// the writer stopped, or the stream was ended).
func (q *lineQueue) put(ctx context.Context, line []byte) bool {
	p, n := q.pool, int64(len(line))
	p.mu.Lock()
	for {
		if q.end != nil || q.closed {
			p.mu.Unlock()
			return false
		}
		if q.held > 0 && q.held+n > q.limit {
			p.mu.Unlock()
			select {
			case <-q.room:
			case <-ctx.Done():
				return false
			}
			p.mu.Lock()
			continue
		}
		if p.used+n > p.limit {
			if v := p.slowest(); v != nil {
				p.endSlow(v)
				continue
			}
			// Nothing is queued: a line over the whole limit goes alone.
		}
		break
	}
	q.lines = append(q.lines, line)
	q.queued += n
	q.held += n
	p.used += n
	p.peak = max(p.peak, p.used)
	p.mu.Unlock()
	signal(q.ready)
	return true
}

// finish ends the stream after the lines queued, with err (the
// subscription's end).
func (q *lineQueue) finish(err error) {
	q.pool.mu.Lock()
	if q.end == nil {
		q.end = err
	}
	q.pool.mu.Unlock()
	signal(q.ready)
}

// take returns the next line, which the writer holds until it calls
// written; with none left, the end (nil while the stream goes on).
func (q *lineQueue) take() (line []byte, end error) {
	p := q.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(q.lines) == 0 {
		return nil, q.end
	}
	line = q.lines[0]
	q.lines[0] = nil
	q.lines = q.lines[1:]
	q.queued -= int64(len(line))
	p.used -= int64(len(line))
	return line, nil
}

// written says the line taken last was written: the stream holds it no
// longer.
func (q *lineQueue) written(line []byte) {
	q.pool.mu.Lock()
	q.held -= int64(len(line))
	q.progress = time.Now()
	q.pool.mu.Unlock()
	signal(q.room)
}

// close is the writer's last call: the lines still queued go back to the
// pool, and the subscription ends.
func (q *lineQueue) close() {
	p := q.pool
	p.mu.Lock()
	q.closed = true
	p.used -= q.queued
	q.lines, q.queued, q.held = nil, 0, 0
	delete(p.queues, q)
	p.mu.Unlock()
	signal(q.room)
}

// slowest returns the stream with lines queued whose client took its last
// line the longest ago, nil when no stream has lines queued. A client
// that stalled took nothing since; one that reads, however far behind,
// took a line a moment ago.
func (p *streamPool) slowest() *lineQueue {
	var slowest *lineQueue
	for q := range p.queues {
		if q.queued > 0 && (slowest == nil || q.progress.Before(slowest.progress)) {
			slowest = q
		}
	}
	return slowest
}

// endSlow ends q as a slow reader: its queued lines are dropped, and its
// writer sends the error line after the line it is writing.
func (p *streamPool) endSlow(q *lineQueue) {
	p.used -= q.queued
	q.held -= q.queued
	q.lines, q.queued = nil, 0
	q.end = errSlowReader
	p.slow++
	signal(q.ready)
	signal(q.room)
}

// stats returns the bytes queued now and at most, and how many streams
// were ended as slow readers.
func (p *streamPool) stats() (used, peak, slow int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.peak, p.slow
}
