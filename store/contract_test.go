package store_test

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// walSegmentPaths returns the paths of the WAL segment files of the store in
// dir, in order.
func walSegmentPaths(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	var segs []string
	for _, e := range ents {
		if len(e.Name()) == 20 && strings.Trim(e.Name(), "0123456789") == "" {
			segs = append(segs, filepath.Join(dir, "wal", e.Name()))
		}
	}
	require.NotEmpty(t, segs)
	return segs
}

// TestErrorSentinels drives every error a caller may branch on through the
// public API; the ErrPoisoned case is TestFaultFileSizeLimit's (a real
// failing write in a child process).
func TestErrorSentinels(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		want error
		run  func(t *testing.T, dir string) error
	}{
		{"Append after Close", store.ErrClosed, func(t *testing.T, dir string) error {
			s := open(t, dir)
			require.NoError(t, s.Close())
			_, err := s.Append(ctx, []dcb.Event{ev("A")}, nil)
			return err
		}},
		{"Read after Close", store.ErrClosed, func(t *testing.T, dir string) error {
			s := open(t, dir)
			appendOK(t, s, ev("A", "x"))
			require.NoError(t, s.Close())
			_, err := read(s, ctx, tagQuery("x"), store.ReadOptions{})
			return err
		}},
		{"Subscribe after Close", store.ErrClosed, func(t *testing.T, dir string) error {
			s := open(t, dir)
			require.NoError(t, s.Close())
			for _, err := range s.Subscribe(ctx, dcb.All(), 0) {
				if err != nil {
					return err
				}
			}
			return nil
		}},
		{"WaitProjected after Close", store.ErrClosed, func(t *testing.T, dir string) error {
			s := open(t, dir)
			appendOK(t, s, ev("A"))
			require.NoError(t, s.Close())
			return s.WaitProjected(ctx, 1)
		}},
		{"WaitProjected beyond head after Close", store.ErrClosed, func(t *testing.T, dir string) error {
			s := open(t, dir)
			require.NoError(t, s.Close())
			return s.WaitProjected(ctx, 5)
		}},
		{"second writer", store.ErrLocked, func(t *testing.T, dir string) error {
			open(t, dir)
			_, err := store.Open(dir, nil)
			return err
		}},
		{"Open of a WAL damaged mid-log", store.ErrCorrupt, func(t *testing.T, dir string) error {
			s, err := store.Open(dir, &store.Options{SegmentSize: 4096})
			require.NoError(t, err)
			for range 50 {
				appendOK(t, s, dcb.Event{Type: "A", Data: json.RawMessage(`"` + strings.Repeat("d", 300) + `"`)})
			}
			require.NoError(t, s.Close())
			segs := walSegmentPaths(t, dir)
			require.Greater(t, len(segs), 2)
			flipByte(t, segs[0], 100)
			// Without a checkpoint Open reads every record (with one, it
			// trusts what the checkpoint vouches for: see the README).
			require.NoError(t, os.Remove(filepath.Join(dir, "checkpoint")))
			_, err = store.Open(dir, nil)
			return err
		}},
		{"Open of a WAL that lost acknowledged positions", store.ErrCorrupt, func(t *testing.T, dir string) error {
			s := open(t, dir)
			appendOK(t, s, ev("A"))
			require.NoError(t, s.Close())
			require.NoError(t, os.Truncate(walSegmentPaths(t, dir)[0], 0))
			_, err := store.Open(dir, nil)
			return err
		}},
		{"Read of a damaged record", store.ErrCorrupt, func(t *testing.T, dir string) error {
			s := open(t, dir)
			appendOK(t, s, ev("A", "x"), dcb.Event{Type: "B", Tags: []string{"y"}, Data: json.RawMessage(`"damage me"`)})
			appendOK(t, s, ev("C", "z"))
			closeProjected(t, s) // Close alone may checkpoint less
			// Inside the part the checkpoint vouches for: Open does not read
			// it (see the README), the read that meets it reports it.
			seg := walSegmentPaths(t, dir)[0]
			b, err := os.ReadFile(seg)
			require.NoError(t, err)
			at := bytes.Index(b, []byte("damage me"))
			require.Positive(t, at)
			flipByte(t, seg, int64(at))
			s = open(t, dir)
			_, err = read(s, ctx, tagQuery("y"), store.ReadOptions{})
			return err
		}},
		{"append condition", dcb.ErrAppendConditionFailed, func(t *testing.T, dir string) error {
			s := open(t, dir)
			appendOK(t, s, ev("A", "x"))
			_, err := s.Append(ctx, []dcb.Event{ev("A", "x")}, &dcb.AppendCondition{FailIfEventsMatch: tagQuery("x")})
			return err
		}},
		{"invalid event", dcb.ErrInvalidEvent, func(t *testing.T, dir string) error {
			_, err := open(t, dir).Append(ctx, []dcb.Event{{Type: "A", Data: json.RawMessage("\"\xff\xfe\"")}}, nil)
			return err
		}},
		{"invalid query in a condition", dcb.ErrInvalidQuery, func(t *testing.T, dir string) error {
			_, err := open(t, dir).Append(ctx, []dcb.Event{ev("A")}, &dcb.AppendCondition{FailIfEventsMatch: query(item(nil))})
			return err
		}},
		{"invalid query in a read", dcb.ErrInvalidQuery, func(t *testing.T, dir string) error {
			_, err := read(open(t, dir), ctx, query(item(nil)), store.ReadOptions{})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.run(t, t.TempDir())
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want, "%v", err)
			for _, other := range []error{store.ErrClosed, store.ErrLocked, store.ErrCorrupt, store.ErrPoisoned,
				dcb.ErrAppendConditionFailed, dcb.ErrInvalidEvent, dcb.ErrInvalidQuery} {
				if other != tc.want {
					assert.NotErrorIs(t, err, other, "%v", err)
				}
			}
		})
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Less(t, off, int64(len(b)))
	b[off] ^= 0x20
	require.NoError(t, os.WriteFile(path, b, 0o640))
}

// TestReadRacingClose: a Read or Subscribe that meets Close ends with
// ErrClosed, never an error from the files Close shut, and never a panic;
// a read Close did not interrupt is whole.
func TestReadRacingClose(t *testing.T) {
	ctx := context.Background()
	const events = 200
	build := func(t *testing.T) string {
		dir := t.TempDir()
		s := open(t, dir)
		for i := range events {
			appendOK(t, s, ev("A", "x", fmt.Sprintf("n:%d", i)))
		}
		require.NoError(t, s.Close())
		return dir
	}
	dir := build(t)

	// Close inside the loop, on each kind of read.
	reads := map[string]func(s *store.Store) func(func(dcb.SequencedEvent, error) bool){
		"Read by tag": func(s *store.Store) func(func(dcb.SequencedEvent, error) bool) {
			return s.Read(ctx, tagQuery("x"), store.ReadOptions{})
		},
		"Read all": func(s *store.Store) func(func(dcb.SequencedEvent, error) bool) {
			return s.Read(ctx, dcb.All(), store.ReadOptions{})
		},
		"Read by tag backwards": func(s *store.Store) func(func(dcb.SequencedEvent, error) bool) {
			return s.Read(ctx, tagQuery("x"), store.ReadOptions{Backwards: true})
		},
		"Subscribe": func(s *store.Store) func(func(dcb.SequencedEvent, error) bool) {
			return s.Subscribe(ctx, tagQuery("x"), 0)
		},
	}
	for name, seq := range reads {
		t.Run(name, func(t *testing.T) {
			for _, closeAt := range []int{0, 2, 63, 64, 65, events - 1} {
				s, err := store.Open(dir, nil)
				require.NoError(t, err)
				n := 0
				var last error
				for _, err := range seq(s) {
					if err != nil {
						last = err
						break
					}
					if n == closeAt {
						require.NoError(t, s.Close())
					}
					n++
				}
				assert.ErrorIs(t, last, store.ErrClosed, "close after %d events", closeAt)
				assert.Equal(t, closeAt+1, n, "no event after Close")
			}
		})
	}

	// Close from another goroutine at any moment.
	for i := range 50 {
		s, err := store.Open(dir, nil)
		require.NoError(t, err)
		closed := make(chan error)
		go func() { closed <- s.Close() }()
		var got []uint64
		var last error
		for e, err := range s.Read(ctx, tagQuery("x"), store.ReadOptions{Backwards: i%2 == 1}) {
			if err != nil {
				last = err
				break
			}
			got = append(got, e.Position)
		}
		require.NoError(t, <-closed)
		if last == nil {
			assert.Len(t, got, events, "a read Close did not interrupt is whole")
		} else {
			assert.ErrorIs(t, last, store.ErrClosed)
			assert.LessOrEqual(t, len(got), events)
		}
	}
}

// TestOpenRefusesLostPositions: a WAL that lost positions the checkpoint or
// the WAL's offsets file vouch for is refused with ErrCorrupt naming the
// lost range, and nothing is changed; `recover --allow-data-loss` accepts
// the loss, reports it, and keeps the lost positions as markers.
func TestOpenRefusesLostPositions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string, segs []string)
		from   func(segFirsts []uint64) uint64
	}{
		{"last segment truncated to 0 bytes", func(t *testing.T, dir string, segs []string) {
			require.NoError(t, os.Truncate(segs[len(segs)-1], 0))
		}, func(segFirsts []uint64) uint64 { return segFirsts[len(segFirsts)-1] }},
		{"last segment deleted", func(t *testing.T, dir string, segs []string) {
			require.NoError(t, os.Remove(segs[len(segs)-1]))
		}, func(segFirsts []uint64) uint64 { return segFirsts[len(segFirsts)-1] }},
		{"last segment deleted, WAL offsets file too", func(t *testing.T, dir string, segs []string) {
			require.NoError(t, os.Remove(segs[len(segs)-1]))
			require.NoError(t, os.Remove(filepath.Join(dir, "wal", "offsets")))
		}, func(segFirsts []uint64) uint64 { return segFirsts[len(segFirsts)-1] }},
		{"every segment deleted", func(t *testing.T, dir string, segs []string) {
			for _, s := range segs {
				require.NoError(t, os.Remove(s))
			}
		}, func([]uint64) uint64 { return 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := store.Open(dir, &store.Options{SegmentSize: 2048})
			require.NoError(t, err)
			// One event per append: a segment's name is its first position.
			for i := range 60 {
				appendOK(t, s, dcb.Event{Type: "A", Tags: []string{fmt.Sprintf("n:%d", i)}, Data: json.RawMessage(`"` + strings.Repeat("d", 200) + `"`)})
			}
			closeProjected(t, s)
			segs := walSegmentPaths(t, dir)
			require.GreaterOrEqual(t, len(segs), 3)
			var firsts []uint64
			for _, p := range segs {
				var first uint64
				_, err := fmt.Sscanf(filepath.Base(p), "%d", &first)
				require.NoError(t, err)
				firsts = append(firsts, first)
			}
			tc.damage(t, dir, segs)
			lost := fmt.Sprintf("positions %d..60", tc.from(firsts))
			before := testdir.Hash(t, dir)

			_, err = store.Open(dir, nil)
			require.ErrorIs(t, err, store.ErrCorrupt)
			assert.Contains(t, err.Error(), lost)
			assert.Contains(t, err.Error(), "--allow-data-loss")
			assert.Equal(t, before, testdir.Hash(t, dir), "a refused Open changed the store")

			_, err = recovery.Repair(dir, nil)
			require.ErrorIs(t, err, recovery.ErrDataLoss)
			assert.Contains(t, err.Error(), lost)
			assert.Equal(t, before, testdir.Hash(t, dir), "a refused repair changed the store")

			rep, err := recovery.Repair(dir, &recovery.Options{AllowDataLoss: true})
			require.NoError(t, err)
			require.NotNil(t, rep.WALRepair)
			assert.Equal(t, []storedir.Range{{From: tc.from(firsts), To: 60}}, rep.WALRepair.Lost)

			// The lost positions keep their places as markers, of the
			// type and tags their event files still say.
			s = open(t, dir)
			assert.Equal(t, uint64(60), s.Head())
			got := readAll(t, s, dcb.All(), store.ReadOptions{})
			require.Len(t, got, 60)
			for _, e := range got {
				if e.Position < tc.from(firsts) {
					assert.False(t, e.Lost)
					continue
				}
				assert.Equal(t, dcb.SequencedEvent{Event: dcb.Event{Type: "A", Tags: []string{fmt.Sprintf("n:%d", e.Position-1)}}, Position: e.Position, Lost: true}, e)
			}
			assert.Equal(t, uint64(61), appendOK(t, s, ev("A")), "the store goes on after the loss, at the old head + 1")
			_, err = s.Append(ctx, []dcb.Event{ev("B")}, &dcb.AppendCondition{FailIfEventsMatch: typeQuery("A"), After: s.Head() - 1})
			assert.ErrorIs(t, err, dcb.ErrAppendConditionFailed)
		})
	}

	t.Run("checkpoint beyond the WAL", func(t *testing.T) {
		dir := t.TempDir()
		s := open(t, dir)
		appendOK(t, s, ev("A"), ev("B"))
		closeProjected(t, s)
		cp := filepath.Join(dir, "checkpoint")
		b, err := os.ReadFile(cp)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(cp, []byte(strings.Replace(string(b), `"position":2`, `"position":9`, 1)), 0o640))
		_, err = store.Open(dir, nil)
		require.ErrorIs(t, err, store.ErrCorrupt)
		assert.Contains(t, err.Error(), "positions 3..9")
	})
}

// TestAppendSizeLimitAfterTrim: the record size limit applies to the stored
// batch, with whitespace around Data trimmed.
func TestAppendSizeLimitAfterTrim(t *testing.T) {
	ctx := context.Background()
	// The bound at 1 MiB: 64 MiB of JSON takes seconds to validate under
	// the race detector (wal's TestAppendFrameTooLarge checks the real one).
	const limit = 1 << 20
	s, err := store.OpenRecordLimit(testdir.Tmpfs(t), nil, limit)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	value := `"` + strings.Repeat("a", limit-1024) + `"`
	padded := strings.Repeat(" ", limit/16) + value + strings.Repeat("\n", limit/16)
	require.Greater(t, len(padded), limit)
	last, err := s.Append(ctx, []dcb.Event{{Type: "Big", Data: json.RawMessage(padded)}}, nil)
	require.NoError(t, err, "trimmed, the batch fits")
	got := readAll(t, s, typeQuery("Big"), store.ReadOptions{})
	require.Len(t, got, 1)
	assert.Equal(t, last, got[0].Position)
	assert.Equal(t, len(value), len(got[0].Data))

	_, err = s.Append(ctx, []dcb.Event{{Type: "Big", Data: json.RawMessage(`"` + strings.Repeat("a", limit) + `"`)}}, nil)
	assert.ErrorIs(t, err, dcb.ErrInvalidEvent)
	assert.Contains(t, err.Error(), "record limit")
	assert.Equal(t, last, s.Head(), "nothing written")
}

// TestAppendManyTags: an event with a hundred thousand tags, half of them
// repeated, appends with its duplicates dropped (in linear time: it was
// quadratic, 12 s for 100k tags; see dcb's BenchmarkNormalized100kTags).
func TestAppendManyTags(t *testing.T) {
	ctx := context.Background()
	// No tag index files: they would be a hundred thousand files to write,
	// which is not what this tests.
	s, err := store.Open(testdir.Tmpfs(t), &store.Options{Projection: &store.Projection{EventFiles: true, TypeIndex: true}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	tags := make([]string, 100_000)
	for i := range tags {
		tags[i] = fmt.Sprintf("t:%d", i)
	}
	withDups := append(slices.Clone(tags), tags[:50_000]...)
	last, err := s.Append(ctx, []dcb.Event{{Type: "Tagged", Tags: withDups}}, nil)
	require.NoError(t, err)
	got := readAll(t, s, tagQuery("t:99999"), store.ReadOptions{})
	require.Len(t, got, 1)
	assert.Equal(t, last, got[0].Position)
	assert.Equal(t, tags, got[0].Tags)
}

// TestOpenUpgradesFormat1: a store written by format version 1 (its WAL
// holds version 1 frames) opens, is marked version 2, reads its old events
// exactly and its new ones, and verifies consistent; a store of an unknown
// format is refused untouched.
func TestOpenUpgradesFormat1(t *testing.T) {
	dir := t.TempDir()
	seg, err := os.ReadFile(filepath.Join("..", "wal", "testdata", "v1", "00000000000000000001"))
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "wal"), 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wal", "00000000000000000001"), seg, 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "FORMAT"), []byte("possum 1\n"), 0o640))

	s := open(t, dir)
	b, err := os.ReadFile(filepath.Join(dir, "FORMAT"))
	require.NoError(t, err)
	assert.Equal(t, "possum 3\n", string(b))
	require.Equal(t, uint64(4), s.Head())
	old := readAll(t, s, dcb.All(), store.ReadOptions{})
	assert.Equal(t, []string{"CourseDefined", "StudentSubscribed", "StudentSubscribed", "Noted"},
		[]string{old[0].Type, old[1].Type, old[2].Type, old[3].Type})
	assert.Equal(t, map[string]string{"by": "demo", "corr": "x1"}, old[1].Metadata)
	assert.Equal(t, []string{"course:c1", "student:bob", "🦘"}, old[2].Tags)
	appendOK(t, s, ev("Later", "course:c1"), ev("Later"))
	s = reopen(t, s)
	got := readAll(t, s, tagQuery("course:c1"), store.ReadOptions{Backwards: true})
	assert.Equal(t, []uint64{5, 3, 2, 1}, positions(got))
	require.NoError(t, s.Close())
	rep, err := recovery.Verify(dir, nil)
	require.NoError(t, err)
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)

	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, "FORMAT"), []byte("possum 9\n"), 0o640))
	before := testdir.Hash(t, other)
	_, err = store.Open(other, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `format "possum 9"`)
	after := testdir.Hash(t, other)
	delete(after, "LOCK") // the lock is taken before FORMAT is read
	assert.Equal(t, before, after)
}

// TestReadOptionsSpan: the positions a read covers, as Read and the
// benchmark's peer stores use them.
func TestReadOptionsSpan(t *testing.T) {
	for _, tc := range []struct {
		o        store.ReadOptions
		head     uint64
		from, to uint64
	}{
		{store.ReadOptions{}, 10, 1, 10},
		{store.ReadOptions{From: 4}, 10, 4, 10},
		{store.ReadOptions{From: 11}, 10, 11, 10}, // none
		{store.ReadOptions{Backwards: true}, 10, 1, 10},
		{store.ReadOptions{Backwards: true, From: 4}, 10, 1, 4},
		{store.ReadOptions{Backwards: true, From: 99}, 10, 1, 10},
		{store.ReadOptions{}, 0, 1, 0}, // empty store: none
		{store.ReadOptions{Limit: 3}, 10, 1, 10},
	} {
		from, to, err := tc.o.Span(tc.head)
		require.NoError(t, err)
		assert.Equal(t, [2]uint64{tc.from, tc.to}, [2]uint64{from, to}, "%+v on head %d", tc.o, tc.head)
	}
	_, _, err := store.ReadOptions{Limit: -1}.Span(10)
	assert.ErrorIs(t, err, dcb.ErrInvalidQuery)
}
