package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/require"
)

// TestWatcherSeesWholeFiles watches events/ with fsnotify while the store
// appends and projects 10,000 events. Every event file must appear exactly
// once (a Create: files are renamed into place, which inotify reports as a
// Create of the final name), be complete JSON the moment it appears, and
// carry the position its name says. No file in events/ is ever written in
// place, renamed away or removed.
func TestWatcherSeesWholeFiles(t *testing.T) {
	t.Parallel()
	const (
		events = 10_000
		batch  = 10
	)
	dir := testdir.Tmpfs(t)
	s := openStore(t, dir, &store.Options{NoSync: true})
	eventsDir := filepath.Join(dir, storedir.EventsDir)

	w, err := fsnotify.NewWatcher()
	require.NoError(t, err)
	defer w.Close()
	require.NoError(t, w.Add(eventsDir))

	// The watcher goroutine owns these until done is closed.
	created := make(map[uint64]int, events)
	var problems []string
	allSeen := make(chan struct{})  // closed once every position was created
	sentinel := make(chan struct{}) // closed when the sentinel file shows up
	stop := make(chan struct{})
	done := make(chan struct{})
	const sentinelName = "zz-sentinel.txt"
	go func() {
		defer close(done)
		bad := func(format string, args ...any) {
			if len(problems) < 50 {
				problems = append(problems, fmt.Sprintf(format, args...))
			}
		}
		for {
			var ev fsnotify.Event
			select {
			case <-stop:
				return
			case err, ok := <-w.Errors:
				if ok {
					bad("watcher error: %v", err)
				}
				continue
			case ev = <-w.Events:
			}
			name := filepath.Base(ev.Name)
			if name == sentinelName {
				if ev.Has(fsnotify.Create) {
					close(sentinel)
				}
				continue
			}
			if !strings.HasSuffix(name, ".json") {
				bad("%s on unexpected file %s", ev.Op, name)
				continue
			}
			pos, err := strconv.ParseUint(strings.TrimSuffix(name, ".json"), 10, 64)
			if err != nil || storedir.EventFileName(pos) != name {
				bad("%s on badly named file %s", ev.Op, name)
				continue
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) || ev.Has(fsnotify.Write) {
				bad("%s on %s: event files are only ever renamed into events/", ev.Op, name)
			}
			if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) {
				continue
			}
			b, err := os.ReadFile(ev.Name)
			if err != nil {
				bad("%s on %s, then: %v", ev.Op, name, err)
				continue
			}
			var f struct {
				Position *uint64 `json:"position"`
			}
			if err := json.Unmarshal(b, &f); err != nil || f.Position == nil {
				bad("%s on %s: the file is not a whole event (%v): %q", ev.Op, name, err, b)
				continue
			}
			if *f.Position != pos {
				bad("%s holds position %d", name, *f.Position)
			}
			if ev.Has(fsnotify.Create) {
				created[pos]++
				if len(created) == events && created[pos] == 1 {
					close(allSeen)
				}
			}
		}
	}()

	for i := 0; i < events; i += batch {
		evs := make([]dcb.Event, batch)
		for j := range evs {
			evs[j] = dcb.Event{Type: "Watched", Tags: []string{fmt.Sprintf("w:%d", (i+j)%7)}, Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i+j))}
		}
		_, err := s.Append(t.Context(), evs, nil)
		require.NoError(t, err)
	}
	require.Equal(t, uint64(events), s.Head())
	require.NoError(t, s.WaitProjected(t.Context(), events))

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	select {
	case <-allSeen:
	case <-ctx.Done():
	}
	// inotify delivers in order: once the sentinel's Create arrives, every
	// event about the files before it has been handled.
	require.NoError(t, os.WriteFile(filepath.Join(eventsDir, sentinelName), nil, 0o640))
	select {
	case <-sentinel:
	case <-ctx.Done():
		t.Error("the sentinel's Create never arrived")
	}
	close(stop)
	<-done

	for _, p := range problems {
		t.Error(p)
	}
	var missing, repeated []string
	for pos := uint64(1); pos <= events; pos++ {
		switch n := created[pos]; {
		case n == 0:
			missing = append(missing, strconv.FormatUint(pos, 10))
		case n > 1:
			repeated = append(repeated, fmt.Sprintf("%d (%d times)", pos, n))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d positions never created, e.g. %v", len(missing), missing[:min(len(missing), 20)])
	}
	if len(repeated) > 0 {
		t.Errorf("%d positions created more than once, e.g. %v", len(repeated), repeated[:min(len(repeated), 20)])
	}
	require.Len(t, created, events, "creates of positions beyond the head")
	require.NoError(t, os.Remove(filepath.Join(eventsDir, sentinelName)))
}
