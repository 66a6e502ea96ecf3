package opossum

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/opossum/opossumtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scan finds the one context at dir and scans it.
func scan(t *testing.T, dir string) *Snapshot {
	t.Helper()
	cs, err := Find(dir)
	require.NoError(t, err)
	require.Len(t, cs, 1)
	s, err := Scan(context.Background(), cs[0], ScanOptions{})
	require.NoError(t, err)
	return s
}

// items reads every position of s.
func items(t *testing.T, s *Snapshot) []Item {
	t.Helper()
	var got []Item
	for it, err := range s.Events(context.Background()) {
		require.NoError(t, err)
		got = append(got, it)
	}
	return got
}

// events are the events of items, which must all be events.
func events(t *testing.T, its []Item) []dcb.SequencedEvent {
	t.Helper()
	var got []dcb.SequencedEvent
	for _, it := range its {
		require.Nil(t, it.Problem)
		got = append(got, it.Event)
	}
	return got
}

// Every layout covered reads as the events its fixture holds, field for
// field: the payload's bytes as the file has them (CRLF and indentation
// included), tags with ':' and '\' in keys and a null value, the metadata
// under its Opossum names, the timestamp to the tick and in UTC, the
// offset's text kept when it was not UTC.
func TestLayouts(t *testing.T) {
	for _, tc := range []struct {
		name         string
		extraDirs    []string // empty directories Opossum's initializer made, which git keeps no copy of
		locked       bool
		ledger, last uint64
	}{
		{name: "current", locked: true, ledger: 5, last: 5},
		{name: "seed", extraDirs: []string{"Events", "Indices/EventType", "Indices/Tags"}, ledger: 3, last: 3},
		{name: "minified", extraDirs: []string{"Events"}, ledger: 3, last: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := opossumtest.Copy(t, tc.name)
			for _, d := range tc.extraDirs {
				err := os.MkdirAll(filepath.Join(dir, d), 0o755)
				if !os.IsExist(err) { // on a case-insensitive file system Events is events
					require.NoError(t, err)
				}
			}
			s := scan(t, dir)
			assert.Equal(t, tc.name, s.Name)
			assert.Equal(t, tc.locked, s.Locked)
			assert.Equal(t, tc.ledger, s.Ledger)
			assert.Equal(t, tc.last, s.LastFile)
			assert.Equal(t, max(tc.ledger, tc.last), s.Cut)
			assert.Empty(t, s.LedgerProblem)
			assert.Empty(t, s.Leftovers)
			assert.Empty(t, s.Strays)
			require.Len(t, s.EventDirs, 1, "the empty Events directory is not read")
			assert.Equal(t, opossumtest.Want(tc.name), events(t, items(t, s)))
		})
	}
}

// A root holding several contexts gives each, by name; a directory in it
// that is not a context is left out.
func TestRoot(t *testing.T) {
	root := opossumtest.Copy(t, "root")
	cs, err := Find(root)
	require.NoError(t, err)
	require.Equal(t, []Context{{Name: "Billing", Dir: filepath.Join(root, "Billing")}, {Name: "Empty", Dir: filepath.Join(root, "Empty")},
		{Name: "Shop", Dir: filepath.Join(root, "Shop")}}, cs)
	for _, c := range cs {
		s, err := Scan(context.Background(), c, ScanOptions{})
		require.NoError(t, err)
		assert.Equal(t, opossumtest.Want("root/"+c.Name), events(t, items(t, s)), c.Name)
	}

	_, err = Find(filepath.Join(root, "Notes"))
	assert.ErrorContains(t, err, "no Opossum store at")
	_, err = Find(filepath.Join(root, "nothing"))
	assert.Error(t, err)
}

// Each damage an importer meets in a real store is found where it is and
// said in words, and the positions around it still read.
func TestDamage(t *testing.T) {
	type problem struct {
		pos    uint64
		kind   Kind
		detail string
	}
	for _, tc := range []struct {
		name         string
		ledger, last uint64
		problems     []problem
		ledgerIssue  string
		leftovers    int
		dupTags      map[uint64][]string
	}{
		{name: "gap", ledger: 5, last: 5, problems: []problem{{3, Missing, "no event file, though later positions have one: a gap"}}},
		{name: "ledger-behind", ledger: 2, last: 4, leftovers: 1},
		{name: "ledger-ahead", ledger: 5, last: 3, problems: []problem{
			{4, Missing, "positions 4..5: no event file, though the ledger says 5: the ledger is ahead of the event files"},
		}},
		{name: "torn", ledger: 3, last: 3, problems: []problem{{2, Damaged, "not JSON: the file ends inside a value (a torn write)"}}},
		{name: "notjson", ledger: 3, last: 3, problems: []problem{{2, Damaged, "not JSON: invalid character '<'"}}},
		{name: "zerofilled", ledger: 3, last: 3, problems: []problem{{3, Damaged, "zero-filled"}}},
		{name: "empty", ledger: 2, last: 2, problems: []problem{{2, Damaged, "empty"}}},
		{name: "wrong-position", ledger: 2, last: 2, problems: []problem{{2, Damaged, `"position" is 7, not the 2 of its file name`}}},
		{name: "duplicate-tags", ledger: 2, last: 2, dupTags: map[uint64][]string{2: {"order:o2"}}},
		{name: "corrupt-ledger", ledger: 0, last: 2, ledgerIssue: "the ledger is not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scan(t, opossumtest.Copy(t, "damage/"+tc.name))
			assert.Equal(t, tc.ledger, s.Ledger)
			assert.Equal(t, tc.last, s.LastFile)
			assert.Len(t, s.Leftovers, tc.leftovers)
			if tc.ledgerIssue == "" {
				assert.Empty(t, s.LedgerProblem)
			} else {
				assert.Contains(t, s.LedgerProblem, tc.ledgerIssue)
			}
			its := items(t, s)
			var got []problem
			next := uint64(1)
			for i, it := range its {
				require.Equal(t, next, it.Event.Position, "every position of the snapshot, none skipped")
				next++
				if it.Problem != nil {
					next = it.Event.Position + it.Problem.Positions()
				}
				assert.Equal(t, tc.dupTags[it.Event.Position], it.DuplicateTags, "position %d", i+1)
				if it.Problem == nil {
					if it.Event.Type == "OrderPlaced" {
						assert.Equal(t, opossumtest.Shop(i+1), it.Event)
					}
					continue
				}
				assert.Equal(t, it.Event.Position, it.Problem.Position)
				got = append(got, problem{it.Problem.Position, it.Problem.Kind, it.Problem.Error()})
			}
			require.Equal(t, s.Cut+1, next, "up to the snapshot's last position")
			require.Len(t, got, len(tc.problems), "%+v", got)
			for i, p := range tc.problems {
				assert.Equal(t, p.pos, got[i].pos)
				assert.Equal(t, p.kind, got[i].kind)
				assert.Contains(t, got[i].detail, p.detail)
			}
		})
	}
}

// A ledger far ahead of the files (a position no store reaches, should a
// ledger say one) is one run of missing positions, not an item each.
func TestLedgerFarAhead(t *testing.T) {
	dir := opossumtest.Copy(t, "damage/ledger-ahead")
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".ledger"), []byte(`{"LastSequencePosition": 1099511627776, "EventCount": 1099511627776}`), 0o644))
	its := items(t, scan(t, dir))
	require.Len(t, its, 4)
	p := its[3].Problem
	require.NotNil(t, p)
	assert.Equal(t, Problem{Position: 4, Last: 1 << 40, Kind: Missing,
		Detail: "no event file, though the ledger says 1099511627776: the ledger is ahead of the event files, whose writes were lost"}, *p)
	assert.Equal(t, uint64(1<<40-3), p.Positions())
}

// On a case-sensitive file system a store of the seed's era may hold both
// events and Events; a position in both with different files is a
// conflict, with the same file no problem.
func TestTwoEventDirs(t *testing.T) {
	dir := opossumtest.Copy(t, "damage/gap")
	upper := filepath.Join(dir, "Events")
	if err := os.Mkdir(upper, 0o755); os.IsExist(err) {
		t.Skip("case-insensitive file system: events and Events are one directory")
	}
	b, err := os.ReadFile(filepath.Join(dir, "events", "0000000001.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(upper, "0000000001.json"), b, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(upper, "0000000002.json"), []byte("{}"), 0o644))
	require.NoError(t, os.Rename(filepath.Join(dir, "events", "0000000004.json"), filepath.Join(upper, "0000000004.json")))
	require.NoError(t, os.WriteFile(filepath.Join(upper, "0000000003.json"), []byte(
		`{"event":{"eventType":"OrderPlaced","event":{"n":3},"tags":[]},"position":3,"metadata":{"timestamp":"2026-03-05T12:00:03+00:00"}}`), 0o644))

	s := scan(t, dir)
	its := items(t, s)
	require.Len(t, its, 5)
	assert.Nil(t, its[0].Problem, "the same file in both")
	require.NotNil(t, its[1].Problem)
	assert.Equal(t, Conflict, its[1].Problem.Kind)
	assert.Nil(t, its[2].Problem, "only in Events")
	assert.Nil(t, its[3].Problem, "only in Events")
	assert.Equal(t, opossumtest.Shop(4), its[3].Event)
	assert.Nil(t, its[4].Problem)
}
