package projector

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/wal"
)

const (
	// batchSize bounds the events projected between two looks at the stop
	// signal and two advances of Projected.
	batchSize = 1024
	// stopCheckEvery is how many event files the projector writes between
	// two looks at the stop signal: what Close waits for, at most.
	stopCheckEvery = 64
	// checkpointEvery is how often, at most, a busy projector syncs and
	// writes its checkpoint.
	checkpointEvery = time.Second
	// projectorNice is the nice value of the projector's thread.
	projectorNice = 10
	// openIndexFiles bounds the index files kept open for appending.
	openIndexFiles = 1024
)

// ErrClosed: the projector was stopped.
var ErrClosed = errors.New("projector: stopped")

// Projector tails a WAL and materializes it in a store directory.
type Projector struct {
	dir string
	log *wal.Log
	lg  *slog.Logger
	fs  vfs.FS // every change to the projection goes through it
	// choice: the files to materialize; the in-memory index is whole
	// either way.
	choice Choice

	projected atomic.Uint64 // every event at or below has its files, but for holes
	// holes is the lowest position whose event file is to be rewritten
	// (missing) or not yet looked for (eventsUnchecked: 1); 0: none.
	// Projected reports the position below it.
	holes        atomic.Uint64
	checkpointed atomic.Uint64
	tagEntries   int      // tag index entries at or below projected
	missing      []uint64 // event files at or below the start to rewrite
	eventsFrom   uint64   // event files below this exist (but for missing)
	// eventsUnchecked: Open trusted events/ by its modification time (see
	// Checkpoint.EventsMTime) without listing it. The goroutine lists it
	// before anything else, and before any checkpoint, so that no
	// checkpoint vouches for event files nobody looked for.
	eventsUnchecked bool
	// indexUnchecked: Open took the index from the snapshot of a clean
	// Close without looking at the index files (a stat per type and tag
	// would make Open slow). The goroutine checks them, and rewrites those
	// that do not match, before its first index append and its first
	// checkpoint (checkIndexLate).
	indexUnchecked bool
	// dirty: the projection changed in a way the checkpoint does not show
	// (a repair at Open); the next checkpoint is written even without new
	// positions.
	dirty bool

	idx     *indexer.Index // the store's in-memory index, for the snapshot at Stop
	files   *fileCache
	buf     []byte
	pending map[fileKey][]uint64

	// rate measures how fast it writes (owned by the goroutine; its
	// result is published in rateBits); clock is what it measures with.
	rate     rateMeter
	rateBits atomic.Uint64 // math.Float64bits of events per second, 0: not yet measured
	clock    atomic.Pointer[func() time.Time]

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	advanced chan struct{} // closed and replaced when projected advances
	lastErr  error
}

// Report says what Open found and repaired.
type Report struct {
	Checkpoint        uint64   // position of the checkpoint as read (0: none)
	CheckpointProblem string   // why the checkpoint was not used, if it was not
	IndexRebuilt      string   // why the index files are rebuilt from the WAL, if they are
	IndexFromSnapshot bool     // the index came from the snapshot of a clean Close
	IndexTrimmedBytes int64    // bytes cut from index files beyond the checkpoint
	IndexDamaged      []string // index files removed as unreadable
	EventsListed      bool     // events/ was listed (it changed since the checkpoint)
	StrayEventFiles   int      // event files beyond the WAL's head, removed
	MissingEventFiles int      // event files at or below the checkpoint, rewritten
	Replayed          uint64   // events projected again from the WAL
}

// Rate returns how many events a second the projector writes the files of,
// measured over its recent work (busy time: an idle projector keeps the
// rate it last had); 0 until it has projected something since Open.
func (p *Projector) Rate() float64 { return math.Float64frombits(p.rateBits.Load()) }

// Notify tells the projector the WAL has grown. It never blocks.
func (p *Projector) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Projected returns the last position such that the files of every position
// at or below it are written.
func (p *Projector) Projected() uint64 {
	pr := p.projected.Load()
	if h := p.holes.Load(); h != 0 {
		return min(pr, h-1)
	}
	return pr
}

// Checkpointed returns the position of the last checkpoint written.
func (p *Projector) Checkpointed() uint64 { return p.checkpointed.Load() }

// Err returns the last projection error, nil once a later attempt succeeded.
func (p *Projector) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// Frontier returns the last position the projector has written the files
// of, going forward: Projected but for the files below the checkpoint it
// is still to look for or rewrite. Head minus Frontier is the lag.
func (p *Projector) Frontier() uint64 { return p.projected.Load() }

// Wait blocks until every event at or below pos is projected, ctx ends or the
// projector stops.
func (p *Projector) Wait(ctx context.Context, pos uint64) error {
	return p.wait(ctx, pos, p.Projected)
}

// WaitFrontier blocks until the frontier reaches pos, ctx ends or the
// projector stops.
func (p *Projector) WaitFrontier(ctx context.Context, pos uint64) error {
	return p.wait(ctx, pos, p.Frontier)
}

func (p *Projector) wait(ctx context.Context, pos uint64, reached func() uint64) error {
	for {
		p.mu.Lock()
		ch := p.advanced
		p.mu.Unlock()
		if reached() >= pos {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			if reached() >= pos {
				return nil
			}
			return ErrClosed
		}
	}
}
