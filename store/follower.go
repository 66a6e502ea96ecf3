package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/indexer"
	"github.com/possumstore/possum/storedir"
	"github.com/possumstore/possum/wal"
)

// FollowOptions configure a Follower. A nil *FollowOptions means the
// defaults.
type FollowOptions struct {
	// Poll is how often the follower looks for new events without being
	// told: the safety net for file notifications that were dropped (a
	// full inotify queue) or are unavailable. 0: DefaultFollowPoll.
	Poll time.Duration
}

// DefaultFollowPoll is FollowOptions.Poll when it is 0.
const DefaultFollowPoll = 250 * time.Millisecond

// Validate reports what is wrong with o, nil when nothing is: Follow calls
// it first.
func (o *FollowOptions) Validate() error {
	if o != nil && o.Poll < 0 {
		return fmt.Errorf("store: FollowOptions.Poll %v: want a positive interval, or 0 for the default %v", o.Poll, DefaultFollowPoll)
	}
	return nil
}

// A Follower reads a store that another process (or this one) writes: the
// events the writer acknowledged, with the same Read, Subscribe and
// HeadContext as the Store. It never takes the writer's lock and never changes a file, so
// it works on a read-only mount, and any number may follow one store. It may
// start before the store exists, and it survives the writer closing,
// crashing and opening the store again.
//
// It learns new events from the WAL's offsets file, which the writer appends
// to once an append is durable, and reads them from the WAL; file
// notifications (fsnotify) only tell it when to look again, and a timer
// looks anyway. Like the writer, it keeps the store's type and tag index in
// memory, but builds it only once a query needs it (one matching every
// event never does): the first such query reads the WAL up to the head.
//
// When positions it has delivered vanish or change (the store was repaired
// with `possum recover --allow-data-loss`), its reads and subscriptions end
// with an error wrapping ErrCorrupt: follow the store again to go on.
type Follower struct {
	dir string
	view
	opts FollowOptions

	mu sync.Mutex // serialises refresh

	// The index is built only when a query needs it (one matching every
	// event does not), up to the position it reads to.
	imu sync.Mutex // serialises indexing
	rd  *wal.Reader

	// Notifications, overflows (notifications the kernel dropped) and
	// looks on the timer, since Follow.
	notified, overflows, polls atomic.Uint64

	done      chan struct{} // the watch goroutine ended
	closeOnce sync.Once
	closeErr  error
}

// Follow follows the store in dir. The store need not exist yet.
func Follow(dir string, opts *FollowOptions) (*Follower, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	f := &Follower{dir: dir, view: newView(), done: make(chan struct{})}
	if opts != nil {
		f.opts = *opts
	}
	if f.opts.Poll == 0 {
		f.opts.Poll = DefaultFollowPoll
	}
	if b, err := os.ReadFile(filepath.Join(dir, storedir.FormatFile)); err == nil {
		if err := readableFormat(dir, b); err != nil {
			return nil, err
		}
	}
	w, err := wal.OpenFollower(filepath.Join(dir, storedir.WALDir))
	if err != nil {
		return nil, fmt.Errorf("store: follow %s: %w", dir, err)
	}
	f.wal, f.idx, f.rd = w, indexer.New(), w.NewReader()
	f.indexTo = f.index
	if err := f.refresh(); err != nil {
		w.Close()
		return nil, err
	}
	go f.watch()
	return f, nil
}

// Dir returns the store's directory.
func (f *Follower) Dir() string { return f.dir }

// HeadContext returns the last position the writer acknowledged: it looks
// for new events first (a read of the WAL's offsets file). It fails when
// that read fails, when the log changed under the follower (ErrCorrupt),
// when the follower is closed (ErrClosed), or when ctx has ended. Stats
// reports the last head it learned without looking.
func (f *Follower) HeadContext(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := f.refresh(); err != nil {
		return 0, err
	}
	return f.head.Load(), nil
}

// Read is Store.Read on the events acknowledged when it is called.
func (f *Follower) Read(ctx context.Context, q dcb.Query, o ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	if err := f.refresh(); err != nil {
		return func(yield func(dcb.SequencedEvent, error) bool) { yield(dcb.SequencedEvent{}, err) }
	}
	return f.read(ctx, q, o)
}

// Subscribe is Store.Subscribe: the events matching q after position after,
// then each new one once the writer acknowledged it, until ctx ends or the
// follower closes (ErrClosed).
func (f *Follower) Subscribe(ctx context.Context, q dcb.Query, after uint64) iter.Seq2[dcb.SequencedEvent, error] {
	return f.subscribe(ctx, q, after)
}

// Close stops following; reads and subscriptions still running end with
// ErrClosed.
func (f *Follower) Close() error {
	f.closeOnce.Do(func() {
		close(f.quit)
		<-f.done
		f.mu.Lock()
		defer f.mu.Unlock()
		f.closeErr = f.wal.Close()
	})
	return f.closeErr
}

// FollowerStats describe a Follower.
type FollowerStats struct {
	Head uint64 // the last acknowledged position it knows
	// Since Follow: file notifications received, times the kernel
	// dropped notifications (the follower then looked again), and looks
	// on the timer.
	Notifications, Overflows, Polls uint64
}

// Stats returns the follower's position and how it learned of new events.
func (f *Follower) Stats() FollowerStats {
	return FollowerStats{Head: f.head.Load(), Notifications: f.notified.Load(), Overflows: f.overflows.Load(), Polls: f.polls.Load()}
}

// refresh learns the events the writer acknowledged since the last call
// and publishes the new head.
func (f *Follower) refresh() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failure(); err != nil {
		return err // the log changed under the follower
	}
	if f.closed() {
		return ErrClosed
	}
	last, err := f.wal.Refresh()
	if errors.Is(err, wal.ErrChanged) {
		// ErrCorrupt to callers, the wal's words for what changed (one
		// "wal:" in the message).
		err = fmt.Errorf("store: follow %s: %w: %s", f.dir, ErrCorrupt, strings.TrimPrefix(err.Error(), "wal: "))
		f.fail(err)
		return err
	}
	if err != nil {
		return fmt.Errorf("store: follow %s: %w", f.dir, err)
	}
	if last > f.head.Load() {
		f.publish(last)
	}
	return nil
}

// index adds the events up to position to to the index.
func (f *Follower) index(to uint64) error {
	f.imu.Lock()
	defer f.imu.Unlock()
	for pos := f.idx.Head() + 1; pos <= to; pos++ {
		e, err := f.rd.Event(pos)
		if err == nil {
			err = f.idx.Add(pos, e.Event)
		}
		if err != nil {
			if f.closed() {
				return ErrClosed
			}
			return fmt.Errorf("store: follow %s: index position %d: %w", f.dir, pos, err)
		}
	}
	return nil
}

// watch refreshes on every notification about the WAL's offsets file, and
// every opts.Poll anyway, until Close. It watches the offsets file itself
// once it exists, so the writer's writes to WAL segments, which say nothing
// new until the offsets file lists them, cost a follower nothing; until
// then, and after the file was replaced, it watches the WAL's directory.
func (f *Follower) watch() {
	defer close(f.done)
	walPath := filepath.Join(f.dir, storedir.WALDir)
	offsetsPath := filepath.Join(walPath, wal.OffsetsFile)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		w = nil // polling alone
	}
	var events chan fsnotify.Event
	var errs chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	var watched string // the path watched: offsetsPath, walPath or none
	var watchedFile os.FileInfo
	watch := func(path string) {
		if fi, err := os.Stat(path); err == nil && w.Add(path) == nil {
			watched, watchedFile = path, fi
		}
	}
	unwatch := func() {
		if watched != "" {
			_ = w.Remove(watched) // gone already when its file was removed
			watched = ""
		}
	}
	tick := time.NewTicker(f.opts.Poll)
	defer tick.Stop()
	for {
		if w != nil && watched != offsetsPath {
			// Until the store exists, and again after its wal/ or
			// offsets file was replaced, the timer alone looks.
			was := watched
			if stillThere(offsetsPath) {
				unwatch()
				watch(offsetsPath)
			}
			if watched == "" {
				watch(walPath)
			}
			if watched != was {
				// What changed before the watch began told nobody.
				_ = f.refresh()
			}
		}
		look := true
		select {
		case <-f.quit:
			return
		case ev := <-events:
			f.notified.Add(1)
			switch {
			case watched == offsetsPath && !ev.Has(fsnotify.Write):
				// Removed, renamed, or unlinked while open (a
				// change of attributes): the writer replaced it.
				unwatch()
			case watched == walPath && ev.Has(fsnotify.Remove) && ev.Name == walPath:
				watched = ""
			case watched == walPath && filepath.Base(ev.Name) != wal.OffsetsFile:
				look = false // a segment: nothing new until the offsets file lists it
			}
		case err := <-errs:
			// fsnotify.ErrEventOverflow among others: notifications were
			// lost, so look again.
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				f.overflows.Add(1)
			}
		case <-tick.C:
			f.polls.Add(1)
			if watched != "" {
				// A notification of its replacement may have been lost.
				if fi, err := os.Stat(watched); err != nil || !os.SameFile(fi, watchedFile) {
					unwatch()
				}
			}
		}
		if look {
			_ = f.refresh() // a broken follower ends its readers
		}
	}
}

func stillThere(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}
