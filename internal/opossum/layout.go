package opossum

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/possumstore/possum/internal/sys/platform"
)

// The names in a context directory that the reader uses.
const (
	ledgerFile = ".ledger"
	lockFile   = ".store.lock"
	// eventsDir is the events directory, matched without regard to case:
	// the seed's StorageInitializer made "Events" while its event store
	// wrote "events" (one directory on Windows and macOS, two on Linux);
	// from 0.2.0-preview.2 both say "events".
	eventsDir = "events"
	// posDigits is the width of an event file's name: Opossum writes the
	// position with the .NET format D10, at least ten digits.
	posDigits = 10
)

// Context is one Opossum store: a directory under Opossum's root path named
// for the store (a "context" in Opossum's early versions, StoreName later).
type Context struct {
	Name string // the directory's name: the name of the possum store it becomes
	Dir  string
}

// Find returns the contexts at src: src itself when it is one, else the
// directories in it that are, by name. A context is a directory holding a
// .ledger file or an events directory; anything else in a root is not
// Opossum's and is left alone.
func Find(src string) ([]Context, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("opossum: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("opossum: %s is not a directory", src)
	}
	if ok, err := isContext(src); err != nil || ok {
		return []Context{{Name: filepath.Base(filepath.Clean(src)), Dir: src}}, err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return nil, fmt.Errorf("opossum: %w", err)
	}
	var found []Context
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(src, e.Name())
		ok, err := isContext(dir)
		if err != nil {
			return nil, err
		}
		if ok {
			found = append(found, Context{Name: e.Name(), Dir: dir})
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("opossum: no Opossum store at %s: neither it nor a directory in it holds a .ledger file or an events directory", src)
	}
	return found, nil
}

func isContext(dir string) (bool, error) {
	if st, err := os.Stat(filepath.Join(dir, ledgerFile)); err == nil && st.Mode().IsRegular() {
		return true, nil
	}
	dirs, err := eventDirs(dir)
	return len(dirs) > 0, err
}

// eventDirs returns the events directories of a context: those whose name
// is "events" in any case.
func eventDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("opossum: %w", err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() && strings.EqualFold(e.Name(), eventsDir) {
			dirs = append(dirs, filepath.Join(dir, e.Name()))
		}
	}
	return dirs, nil
}

// ScanOptions tune Scan.
type ScanOptions struct {
	// LockWait is how long Scan waits for Opossum's lock while an Opossum
	// process holds it; 0: 30 seconds. An append holds it for milliseconds.
	LockWait time.Duration
	// OnLockWait, when set, is called once if Scan finds the lock held and
	// starts waiting (for tests).
	OnLockWait func()
}

// Snapshot is what Scan found in a context: the positions to import and
// what else the directory holds.
type Snapshot struct {
	Context
	// Ledger is the ledger's LastSequencePosition: 0 when the ledger is
	// missing, empty (Opossum creates it so) or unreadable.
	Ledger uint64
	// LedgerProblem says why the ledger could not be read; "" when it
	// could, or there is none.
	LedgerProblem string
	// LastFile is the highest position with an event file; Files counts
	// them.
	LastFile uint64
	Files    int
	// Cut is the last position of the snapshot: the higher of Ledger and
	// LastFile. The import covers 1..Cut.
	Cut uint64
	// Locked says the snapshot was taken under Opossum's cross-process
	// lock: it falls between two appends. Stores older than
	// 0.4.0-preview.1 have no lock; a snapshot of one that is being written
	// may end inside an append (which Opossum itself does not make atomic).
	Locked bool
	// Leftovers are temporary files Opossum left in the events directory
	// (name.json.tmp.GUID): writes a crash cut short before their rename.
	// Strays are other files there that are not event files. Neither is
	// read.
	Leftovers, Strays []string
	// EventDirs are the events directories read, the fullest first.
	EventDirs []string
	// gaps are the positions without an event file, 1..Cut, as runs
	// [first, last] in order (see Lost).
	gaps [][2]uint64
	// present collects the positions with an event file while list runs
	// for Scan; nil otherwise.
	present []uint64
}

// Scan takes a snapshot of the context c: under Opossum's lock when the
// store has one, it reads the ledger, then lists the event files. Reading
// the ledger first matters without the lock too: Opossum writes event files
// before it moves the ledger past them, so every position the ledger names
// was listed.
func Scan(ctx context.Context, c Context, opts ScanOptions) (*Snapshot, error) {
	unlock, locked, err := lockStore(ctx, c.Dir, opts)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s := &Snapshot{Context: c, Locked: locked}
	s.Ledger, s.LedgerProblem, err = readLedger(c.Dir)
	if err != nil {
		return nil, err
	}
	s.present = []uint64{}
	if err := s.list(); err != nil {
		return nil, err
	}
	s.Cut = max(s.Ledger, s.LastFile)
	s.findGaps()
	return s, nil
}

// Growth reports what the context holds now beyond the snapshot: the
// ledger's position and the last event file, when either is past Cut. It
// takes no lock: a report, not a snapshot.
func (s *Snapshot) Growth() (ledger, lastFile uint64, err error) {
	now := &Snapshot{Context: s.Context}
	now.Ledger, _, err = readLedger(s.Dir)
	if err != nil {
		return 0, 0, err
	}
	if err := now.list(); err != nil {
		return 0, 0, err
	}
	return now.Ledger, now.LastFile, nil
}

// readLedger reads the position in the ledger of dir. A ledger that is
// missing or empty says 0 (Opossum creates an empty one); an unreadable one
// is a problem to report, not an error: the event files are the data, and
// Opossum's own advice for a corrupt ledger is to delete it and let the
// position be derived from them.
func readLedger(dir string) (pos uint64, problem string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, ledgerFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, "", nil
	case err != nil:
		return 0, "", fmt.Errorf("opossum: %w", err)
	case len(strings.TrimSpace(string(b))) == 0:
		return 0, "", nil
	}
	var l struct {
		LastSequencePosition *int64
		EventCount           *int64
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return 0, fmt.Sprintf("the ledger is not JSON (%v)", jsonProblem(err)), nil
	}
	switch {
	case l.LastSequencePosition == nil:
		return 0, "the ledger has no LastSequencePosition", nil
	case *l.LastSequencePosition < 0:
		return 0, fmt.Sprintf("the ledger's LastSequencePosition is %d", *l.LastSequencePosition), nil
	}
	return uint64(*l.LastSequencePosition), "", nil
}

// list reads the events directories: the last position, the count of event
// files, leftovers and strays.
func (s *Snapshot) list() error {
	dirs, err := eventDirs(s.Dir)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, dir := range dirs {
		n, err := s.listDir(dir)
		if err != nil {
			return err
		}
		if n > 0 {
			counts[dir] = n
			s.EventDirs = append(s.EventDirs, dir)
		}
	}
	sort.SliceStable(s.EventDirs, func(i, j int) bool { return counts[s.EventDirs[i]] > counts[s.EventDirs[j]] })
	sort.Strings(s.Leftovers)
	sort.Strings(s.Strays)
	return nil
}

// listDir lists one events directory in chunks, unsorted: a million names
// need no sort to find the highest.
func (s *Snapshot) listDir(dir string) (int, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, fmt.Errorf("opossum: %w", err)
	}
	defer d.Close()
	n := 0
	for {
		ents, err := d.ReadDir(4096)
		for _, e := range ents {
			name := e.Name()
			pos, ok := filePosition(name)
			switch {
			case ok && !e.IsDir():
				n++
				s.LastFile = max(s.LastFile, pos)
				if s.present != nil {
					s.present = append(s.present, pos)
				}
			case strings.Contains(name, ".json.tmp."):
				s.Leftovers = append(s.Leftovers, filepath.Join(dir, name))
			default:
				s.Strays = append(s.Strays, filepath.Join(dir, name))
			}
		}
		if errors.Is(err, io.EOF) {
			s.Files += n
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("opossum: %w", err)
		}
	}
}

// findGaps sets gaps from the positions present, which it lets go of: a
// position with an event file in any events directory is not a gap.
func (s *Snapshot) findGaps() {
	slices.Sort(s.present)
	next := uint64(1)
	for _, pos := range s.present {
		if pos > next {
			s.gaps = append(s.gaps, [2]uint64{next, pos - 1})
		}
		next = max(next, pos+1)
	}
	if s.Cut >= next {
		s.gaps = append(s.gaps, [2]uint64{next, s.Cut})
	}
	s.present = nil
}

// filePosition is the position an event file's name gives, ok false when
// the name is not one Opossum writes (a position of at least 1 written with
// at least ten digits, zero-padded, then ".json").
func filePosition(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".json")
	if !ok || len(digits) < posDigits {
		return 0, false
	}
	pos, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || pos == 0 || fileName(pos) != name {
		return 0, false
	}
	return pos, true
}

// fileName is the name of the event file of position pos.
func fileName(pos uint64) string {
	return fmt.Sprintf("%0*d.json", posDigits, pos)
}

// lockStore takes Opossum's cross-process lock of dir, waiting while an
// Opossum process holds it, and returns its release. A store without a
// lock file (before 0.4.0-preview.1) is not locked, and locked is false;
// the file is never created.
//
// Opossum opens .store.lock with FileShare.None: .NET takes flock(LOCK_EX)
// on Linux and macOS, which platform.Lock takes too, and waitForLock waits
// for; on Windows the sharing mode itself excludes every other handle, so
// the open fails while Opossum holds it (and Opossum's open fails while
// this one is open), and lockStore polls.
func lockStore(ctx context.Context, dir string, opts ScanOptions) (unlock func(), locked bool, err error) {
	wait := opts.LockWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	path := filepath.Join(dir, lockFile)
	heldErr := fmt.Errorf("opossum: %s is held by another process (an Opossum writer) for more than %s; stop it, or try again", path, wait)
	deadline := time.Now().Add(wait)
	backoff := time.Millisecond
	for waited := false; ; waited = true {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return func() {}, false, nil
		}
		if err == nil {
			if err = platform.Lock(f, true); err == nil {
				return func() { _ = platform.Unlock(f) }, true, nil
			}
			if errors.Is(err, platform.ErrLocked) && canWaitForLock {
				if opts.OnLockWait != nil {
					opts.OnLockWait()
				}
				return waitLocked(ctx, f, time.Until(deadline), heldErr)
			}
			f.Close()
		}
		if !errors.Is(err, platform.ErrLocked) && !sharingViolation(err) {
			return nil, false, fmt.Errorf("opossum: taking Opossum's lock: %w", err)
		}
		if !waited && opts.OnLockWait != nil {
			opts.OnLockWait()
		}
		if time.Now().After(deadline) {
			return nil, false, heldErr
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// waitLocked waits up to wait, or until ctx ends, for the lock on f. A
// wait given up leaves a goroutine blocked in the kernel; should it get
// the lock later, it lets go at once.
func waitLocked(ctx context.Context, f *os.File, wait time.Duration, heldErr error) (func(), bool, error) {
	var mu sync.Mutex // guards abandoned, and the handover through got
	abandoned := false
	got := make(chan error, 1)
	go func() {
		err := waitForLock(f)
		mu.Lock()
		defer mu.Unlock()
		if abandoned {
			_ = platform.Unlock(f)
			return
		}
		got <- err
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var stop error
	select {
	case err := <-got:
		return taken(f, err)
	case <-ctx.Done():
		stop = ctx.Err()
	case <-timer.C:
		stop = heldErr
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case err := <-got: // taken as the wait ended
		return taken(f, err)
	default:
		abandoned = true
		return nil, false, stop
	}
}

// taken is the outcome of waiting for the lock on f: its release, or err.
func taken(f *os.File, err error) (func(), bool, error) {
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("opossum: taking Opossum's lock: %w", err)
	}
	return func() { _ = platform.Unlock(f) }, true, nil
}
