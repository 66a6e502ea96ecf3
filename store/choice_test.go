package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/projectiontest"
	"github.com/possumstore/possum/projector"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProjectionChoices: each choice of files round-trips through Open (a
// clean one and one after a crash left no snapshot), verify and recover,
// and a store can change its choice both ways.
func TestProjectionChoices(t *testing.T) {
	t.Parallel()
	for _, choice := range []store.Projection{
		{},
		{EventFiles: true},
		{TypeIndex: true, TagIndex: true},
		{TagIndex: true},
		{EventFiles: true, TypeIndex: true},
		store.FullProjection(),
	} {
		pc := projector.Choice(choice)
		t.Run(pc.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s, err := store.Open(dir, &store.Options{Projection: &choice})
			require.NoError(t, err)
			assert.Equal(t, choice, s.Projection())
			appendChoiceEvents(t, s, 0, 300)
			evs := readAll(t, s, dcb.All(), store.ReadOptions{})
			closeProjected(t, s)
			projectiontest.RequireMatchesChoice(t, dir, evs, pc)
			requireConsistent(t, dir)

			// The choice is the store's: Open without one keeps it.
			s = open(t, dir)
			assert.Equal(t, choice, s.Projection())
			assert.True(t, s.OpenReport().Projection.IndexFromSnapshot, "%+v", s.OpenReport().Projection)
			requireChoiceReads(t, s, evs)
			appendChoiceEvents(t, s, 300, 50)
			evs = readAll(t, s, dcb.All(), store.ReadOptions{})
			closeProjected(t, s)
			projectiontest.RequireMatchesChoice(t, dir, evs, pc)

			// As after a crash: no snapshot. The index comes from the
			// index files, or from the WAL when they do not hold it all.
			require.NoError(t, os.Remove(filepath.Join(dir, storedir.IndexDir, storedir.SnapshotFile)))
			s = open(t, dir)
			requireChoiceReads(t, s, evs)
			closeProjected(t, s)
			projectiontest.RequireMatchesChoice(t, dir, evs, pc)
			requireConsistent(t, dir)

			// A repair writes only the chosen files.
			rep, err := recovery.Repair(dir, nil)
			require.NoError(t, err)
			assert.True(t, rep.Consistent(), "%+v", rep.Problems)
			projectiontest.RequireMatchesChoice(t, dir, evs, pc)

			// Every file, then back.
			for _, next := range []store.Projection{store.FullProjection(), choice} {
				s, err = store.Open(dir, &store.Options{Projection: &next})
				require.NoError(t, err)
				assert.Equal(t, next, s.Projection())
				requireChoiceReads(t, s, evs)
				closeProjected(t, s)
				projectiontest.RequireMatchesChoice(t, dir, evs, projector.Choice(next))
				requireConsistent(t, dir)
			}
		})
	}
}

func appendChoiceEvents(t *testing.T, s *store.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i += 10 {
		batch := make([]dcb.Event, 0, 10)
		for j := i; j < i+10; j++ {
			batch = append(batch, dcb.Event{Type: fmt.Sprintf("T%d", j%4), Tags: []string{fmt.Sprintf("k:%d", j%9)}, Data: []byte(fmt.Sprintf(`{"j":%d}`, j))})
		}
		_, err := s.Append(t.Context(), batch, nil)
		require.NoError(t, err)
	}
}

// requireChoiceReads checks reads by tag and by type against evs.
func requireChoiceReads(t *testing.T, s *store.Store, evs []dcb.SequencedEvent) {
	t.Helper()
	require.Equal(t, evs, readAll(t, s, dcb.All(), store.ReadOptions{}))
	var tagged, typed []uint64
	for _, e := range evs {
		if e.Tags[0] == "k:5" {
			tagged = append(tagged, e.Position)
		}
		if e.Type == "T2" {
			typed = append(typed, e.Position)
		}
	}
	require.Equal(t, tagged, readPositions(t, s, tagQuery("k:5"), store.ReadOptions{}))
	require.Equal(t, typed, readPositions(t, s, typeQuery("T2"), store.ReadOptions{}))
}

func requireConsistent(t *testing.T, dir string) {
	t.Helper()
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Consistent(), "possum verify: %+v", rep.Problems)
	require.Zero(t, rep.Pending)
}
