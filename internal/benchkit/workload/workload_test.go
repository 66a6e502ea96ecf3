package workload_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/benchkit/workload"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openStore(t *testing.T, opts *store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(testdir.Tmpfs(t), "store"), opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// readAll returns every event of s matching q.
func readAll(t *testing.T, s workload.Store, q dcb.Query) []dcb.SequencedEvent {
	t.Helper()
	var out []dcb.SequencedEvent
	for e, err := range s.Read(context.Background(), q, store.ReadOptions{}) {
		require.NoError(t, err)
		out = append(out, e)
	}
	return out
}

// ConditionalAppend makes exactly writers×perWriter appends of one event,
// none failing its condition, each writer's on its own tag; run again on
// the same store, the writers pick up where their tags stand.
func TestConditionalAppend(t *testing.T) {
	for _, writers := range []int{1, 8, 64} {
		t.Run(fmt.Sprint(writers), func(t *testing.T) {
			s := openStore(t, nil)
			const perWriter = 5
			progressed := 0
			for round := 1; round <= 2; round++ {
				r, err := workload.ConditionalAppend(context.Background(), s, writers, perWriter, func(n int) { progressed += n })
				require.NoError(t, err)
				assert.Equal(t, writers*perWriter, r.Ops)
				assert.Equal(t, writers*perWriter, r.Events)
				assert.Zero(t, r.Failures)
				assert.Positive(t, r.Elapsed)
				assert.Positive(t, r.P50)
				assert.GreaterOrEqual(t, r.P99, r.P50)
				assert.Equal(t, uint64(round*writers*perWriter), s.Head())
				assert.Equal(t, round*writers*perWriter, progressed)
			}
			for w := range writers {
				evs := readAll(t, s, dcb.Query{Items: []dcb.QueryItem{{Tags: []string{workload.WriterTag(w)}}}})
				assert.Len(t, evs, 2*perWriter, "writer %d", w)
				for _, e := range evs {
					assert.Equal(t, []string{workload.WriterTag(w)}, e.Tags)
				}
			}
		})
	}
}

// conflictingStore fails the condition of every second conditional append
// with a condition, as a broken store would.
type conflictingStore struct {
	workload.Store
	n int
}

func (c *conflictingStore) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	if cond != nil {
		if c.n++; c.n%2 == 0 {
			return 0, fmt.Errorf("broken: %w", dcb.ErrAppendConditionFailed)
		}
	}
	return c.Store.Append(ctx, events, cond)
}

// A failed condition is counted, not hidden, and does not stop the run.
func TestConditionalAppendCountsFailures(t *testing.T) {
	s := &conflictingStore{Store: openStore(t, nil)}
	r, err := workload.ConditionalAppend(context.Background(), s, 1, 10, nil)
	require.NoError(t, err)
	assert.Equal(t, 5, r.Failures)
	assert.Equal(t, 5, r.Ops)
}

func TestConditionalAppendStopsOnError(t *testing.T) {
	s := openStore(t, nil)
	require.NoError(t, s.Close())
	_, err := workload.ConditionalAppend(context.Background(), s, 4, 3, nil)
	require.ErrorIs(t, err, store.ErrClosed)
}

func TestBatches(t *testing.T) {
	s := openStore(t, nil)
	r, err := workload.Batches(context.Background(), s, 7, 100, 1, nil)
	require.NoError(t, err)
	assert.Equal(t, 7, r.Ops)
	assert.Equal(t, 700, r.Events)
	assert.Equal(t, uint64(700), s.Head())
	assert.Positive(t, r.P50)
}

// The shape promised: every order tag has exactly EventsPerTag events, one
// per step of an order's life; the events of a tag are spread out; event i
// is at position i+1; the data is the same for the same seed.
func TestShape(t *testing.T) {
	for _, events := range []int{10, 9_990, 25_000} {
		t.Run(fmt.Sprint(events), func(t *testing.T) {
			sh := workload.Shape{Events: events, Seed: 7}
			require.NoError(t, sh.Validate())
			byTag := map[string][]int{}
			types := map[string]int{}
			for i := range events {
				e := sh.Event(i)
				require.NoError(t, dcb.ValidateBatch([]dcb.Event{e}))
				require.Len(t, e.Tags, 2)
				byTag[e.Tags[0]] = append(byTag[e.Tags[0]], i)
				types[e.Type]++
				assert.Equal(t, e, sh.Event(i), "deterministic")
			}
			require.Len(t, byTag, sh.Orders())
			for k := range sh.Orders() {
				is := byTag[workload.OrderTag(k)]
				require.Len(t, is, workload.EventsPerTag, "order %d", k)
				assert.Equal(t, "OrderPlaced", sh.Event(is[0]).Type)
				assert.Equal(t, "OrderDelivered", sh.Event(is[len(is)-1]).Type)
				if events >= 10_000 {
					assert.GreaterOrEqual(t, is[1]-is[0], 500, "order %d's events lie apart", k)
				}
			}
			assert.Len(t, types, len(workload.Types))
			for _, ty := range workload.Types {
				assert.Positive(t, types[ty], ty)
				i := sh.NewestOf(ty)
				require.GreaterOrEqual(t, i, 0)
				assert.Equal(t, ty, sh.Event(i).Type)
				for j := i + 1; j < events; j++ {
					assert.NotEqual(t, ty, sh.Event(j).Type)
				}
			}
			assert.NotEqual(t, sh.Event(0).Data, workload.Shape{Events: events, Seed: 8}.Event(0).Data, "seeded")
		})
	}
	for _, n := range []int{0, -10, 15} {
		assert.Error(t, workload.Shape{Events: n}.Validate(), "%d", n)
	}
	assert.Error(t, workload.Shape{Events: 10, Interleave: -1}.Validate())
}

// Load puts the shape into the store in appends of the given size, event i
// at position i+1; the read workloads then find what they expect.
func TestLoadAndRead(t *testing.T) {
	ctx := context.Background()
	sh := workload.Shape{Events: 1_000, Seed: 3}
	for _, batch := range []int{1, 10, 1000, 3000} {
		t.Run(fmt.Sprint(batch), func(t *testing.T) {
			s := openStore(t, &store.Options{NoSync: true})
			appends := 0
			r, err := workload.Load(ctx, s, sh, batch, func(n int) { appends += n })
			require.NoError(t, err)
			wantAppends := (sh.Events + batch - 1) / batch
			assert.Equal(t, wantAppends, r.Ops)
			assert.Equal(t, wantAppends, appends)
			assert.Equal(t, sh.Events, r.Events)
			require.Equal(t, uint64(sh.Events), s.Head())

			for _, e := range readAll(t, s, dcb.All()) {
				want := sh.Event(int(e.Position) - 1)
				assert.Equal(t, want.Type, e.Type)
				assert.Equal(t, want.Tags, e.Tags)
				assert.JSONEq(t, string(want.Data), string(e.Data))
			}
			for k := range sh.Orders() {
				assert.Len(t, readAll(t, s, workload.TagQuery(k)), workload.EventsPerTag, "order %d", k)
			}

			rd, err := workload.ReadByTag(ctx, s, sh, 300, nil)
			require.NoError(t, err)
			assert.Equal(t, 300, rd.Ops)
			assert.Equal(t, 300*workload.EventsPerTag, rd.Events)
			assert.Positive(t, rd.P50)

			rn, err := workload.ReadNewest(ctx, s, sh, 100, nil)
			require.NoError(t, err)
			assert.Equal(t, 100, rn.Ops)
			assert.Equal(t, 100, rn.Events)

			scanned := 0
			sc, err := workload.FullScan(ctx, s, func(n int) { scanned += n })
			require.NoError(t, err)
			assert.Equal(t, 1, sc.Ops)
			assert.Equal(t, sh.Events, sc.Events)
			assert.Equal(t, sh.Events, scanned)
		})
	}
}

// Loading a shape in slices loads the same store as loading it at once.
func TestLoadRange(t *testing.T) {
	ctx := context.Background()
	sh := workload.Shape{Events: 300, Seed: 5}
	s := openStore(t, &store.Options{NoSync: true})
	for _, r := range [][2]int{{0, 100}, {100, 250}, {250, 300}} {
		res, err := workload.LoadRange(ctx, s, sh, r[0], r[1], 7, nil)
		require.NoError(t, err)
		assert.Equal(t, r[1]-r[0], res.Events)
	}
	for _, e := range readAll(t, s, dcb.All()) {
		assert.Equal(t, sh.Event(int(e.Position)-1).Tags, e.Tags)
	}
	assert.Equal(t, uint64(300), s.Head())
	for _, r := range [][2]int{{-1, 10}, {10, 10}, {0, 301}} {
		_, err := workload.LoadRange(ctx, s, sh, r[0], r[1], 7, nil)
		assert.Error(t, err, "%v", r)
	}
}

// The events of each block are those of whole orders: a store loaded in
// block-aligned slices of different append sizes reads slice by slice.
func TestBlocksHoldWholeOrders(t *testing.T) {
	for _, sh := range []workload.Shape{{Events: 25_000}, {Events: 2_000, Interleave: 66}, {Events: 1_990, Interleave: 7}} {
		block := sh.BlockEvents()
		for i := range sh.Events {
			var k int
			_, err := fmt.Sscanf(sh.Event(i).Tags[0], "order:%d", &k)
			require.NoError(t, err)
			assert.Equal(t, i/block, k*workload.EventsPerTag/block, "%+v: event %d of order %d", sh, i, k)
		}
	}
}

func TestReadByTagRange(t *testing.T) {
	ctx := context.Background()
	sh := workload.Shape{Events: 1_000, Interleave: 30} // blocks of 300 events
	s := openStore(t, &store.Options{NoSync: true})
	_, err := workload.LoadRange(ctx, s, sh, 0, 600, 100, nil)
	require.NoError(t, err)
	r, err := workload.ReadByTagRange(ctx, s, sh, 300, 600, 50, nil)
	require.NoError(t, err, "orders of the loaded blocks")
	assert.Equal(t, 50, r.Ops)
	_, err = workload.ReadByTagRange(ctx, s, sh, 600, 1000, 50, nil)
	assert.Error(t, err, "orders not loaded")
	for _, b := range [][2]int{{0, 500}, {10, 300}, {300, 300}, {0, 1010}} {
		_, err = workload.ReadByTagRange(ctx, s, sh, b[0], b[1], 5, nil)
		assert.Error(t, err, "%v", b)
	}
}

// ReadNewest returns the newest event of the type asked for: checked against
// the shape, position by position.
func TestReadNewestIsNewest(t *testing.T) {
	ctx := context.Background()
	sh := workload.Shape{Events: 1_230, Seed: 1}
	s := openStore(t, &store.Options{NoSync: true})
	_, err := workload.Load(ctx, s, sh, 100, nil)
	require.NoError(t, err)
	for _, ty := range workload.Types {
		for e, err := range s.Read(ctx, workload.TypeQuery(ty), store.ReadOptions{Backwards: true, Limit: 1}) {
			require.NoError(t, err)
			assert.Equal(t, uint64(sh.NewestOf(ty)+1), e.Position, ty)
		}
	}
}

// A read workload on a store that lacks the shape's events fails rather
// than report a rate of reading nothing.
func TestReadsCheckTheStore(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, &store.Options{NoSync: true})
	sh := workload.Shape{Events: 100}
	_, err := workload.ReadByTag(ctx, s, sh, 10, nil)
	assert.Error(t, err)
	_, err = workload.ReadNewest(ctx, s, sh, 10, nil)
	assert.Error(t, err)
	_, err = workload.Load(ctx, s, workload.Shape{Events: 50}, 7, nil)
	require.NoError(t, err)
	_, err = workload.ReadByTag(ctx, s, sh, 10, nil)
	assert.Error(t, err, "the store holds another shape")
}

func TestMeasureOpen(t *testing.T) {
	dir := filepath.Join(testdir.Tmpfs(t), "store")
	r, s, err := workload.MeasureOpen(func() (workload.Store, error) { return store.Open(dir, nil) })
	require.NoError(t, err)
	defer s.Close()
	assert.Positive(t, r.Elapsed)
	if _, err := workload.ResidentBytes(); err == nil {
		assert.Positive(t, r.RSS)
	} else {
		assert.ErrorIs(t, err, workload.ErrNoRSS)
	}
}
