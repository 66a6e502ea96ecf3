package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeletedEventFilesAfterClose deletes event files of a closed store
// and gives events/ back its old modification time, as a deletion in the
// same mtime tick as the last write does, or a tool that restores
// directory times (cp -a, rsync -a, tar): Open's fast path then trusts
// events/, and the projector must still find and rewrite the missing files
// before it writes a checkpoint that vouches for them (issue 7, defect 7).
func TestDeletedEventFilesAfterClose(t *testing.T) {
	for _, then := range []string{"close", "append and wait"} {
		t.Run(then, func(t *testing.T) {
			dir := t.TempDir()
			s, err := store.Open(dir, nil)
			require.NoError(t, err)
			for i := range 20 {
				_, err := s.Append(t.Context(), []dcb.Event{{Type: "T", Tags: []string{fmt.Sprintf("n:%d", i%3)}, Data: []byte(`{"i":1}`)}}, nil)
				require.NoError(t, err)
			}
			closeProjected(t, s)

			removeEventFilesKeepingMTime(t, dir, 1, 7, 20)

			s, err = store.Open(dir, nil)
			require.NoError(t, err)
			assert.False(t, s.OpenReport().Projection.EventsListed, "Open's fast path trusts an unchanged events/ mtime")
			if then == "append and wait" {
				last, err := s.Append(t.Context(), []dcb.Event{{Type: "T"}}, nil)
				require.NoError(t, err)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				require.NoError(t, s.WaitProjected(ctx, last))
				for _, pos := range []uint64{1, 7, 20} {
					assert.FileExists(t, storedir.EventPath(dir, pos), "rewritten before the projection advanced")
				}
			}
			evs := readAll(t, s, dcb.All(), store.ReadOptions{})
			closeProjected(t, s)
			projectiontest.RequireMatches(t, dir, evs)
			rep, err := recovery.Verify(dir, nil)
			require.NoError(t, err)
			assert.True(t, rep.Consistent(), "possum verify: %+v", rep.Problems)
		})
	}
}

// TestRewrittenEventFilesDurableBeforeNamed: an event file the projector
// rewrites (it went missing below the checkpoint) must be durable before
// its name is back in events/, since the next Open lists names only. The
// projector's file system calls are recorded in this process, and at every
// moment of the recording the worst power cut (every directory change kept,
// every unsynced write lost) is worked out: every event file at or below the
// checkpoint that survives it must hold its event.
func TestRewrittenEventFilesDurableBeforeNamed(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	for i := range 30 {
		_, err := s.Append(t.Context(), []dcb.Event{{Type: "T", Tags: []string{fmt.Sprintf("n:%d", i%4)}}}, nil)
		require.NoError(t, err)
	}
	evs := readAll(t, s, dcb.All(), store.ReadOptions{})
	closeProjected(t, s)
	removeEventFilesKeepingMTime(t, dir, 2, 3, 29)

	before := readTree(t, dir, func(rel string) bool { return !strings.HasPrefix(rel, "wal/") && rel != "LOCK" && rel != "FORMAT" })
	var mu sync.Mutex
	var rec bytes.Buffer
	s, err = store.OpenFS(dir, nil, newRecordingFS(dir, vfs.OS, &mu, &rec, false))
	require.NoError(t, err)
	closeProjected(t, s)
	projectiontest.RequireMatches(t, dir, evs)

	lines := strings.Split(strings.TrimSpace(rec.String()), "\n")
	renames := 0
	for cut := range len(lines) + 1 {
		m := newPLModel(before)
		for _, l := range lines[:cut] {
			require.NoError(t, m.apply(l), "line %q", l)
		}
		files, _, _ := m.crash(nil, true)
		var cp storedir.Checkpoint
		require.NoError(t, json.Unmarshal(files[storedir.CheckpointFile], &cp), "cut after line %d", cut)
		for _, e := range evs[:cp.Position] {
			b, ok := files[storedir.EventsDir+"/"+storedir.EventFileName(e.Position)]
			if ok {
				require.Equal(t, string(storedir.AppendEventFile(nil, e)), string(b),
					"cut after line %d of %d (%s): event file %d, which the checkpoint at %d vouches for", cut, len(lines), lines[max(cut-1, 0)], e.Position, cp.Position)
			}
		}
		if cut > 0 && strings.Contains(lines[cut-1], " rename ") && strings.Contains(lines[cut-1], `"events/`) {
			renames++
		}
	}
	assert.Equal(t, 3, renames, "the three missing files were renamed into place")
}

// removeEventFilesKeepingMTime deletes the event files of positions and sets
// events/'s modification time back, as a deletion within the clock tick of
// the last write, or a copy that restores directory times, leaves it.
func removeEventFilesKeepingMTime(t *testing.T, dir string, positions ...uint64) {
	t.Helper()
	events := filepath.Join(dir, storedir.EventsDir)
	st, err := os.Stat(events)
	require.NoError(t, err)
	for _, pos := range positions {
		require.NoError(t, os.Remove(storedir.EventPath(dir, pos)))
	}
	require.NoError(t, os.Chtimes(events, st.ModTime(), st.ModTime()))
}
