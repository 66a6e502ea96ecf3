package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// copies counts the events of the stream with id.
func copies(t testing.TB, url, stream, id string) int {
	t.Helper()
	k := 0
	for _, e := range streamEvents(t, url, stream) {
		if e.ID == id {
			k++
		}
	}
	return k
}

// TestRetryThroughAnotherNode: an append whose answer was lost (the node's
// connection froze right after the batch's commit was sent, or instead of
// sending it, and its caller gave up) is sent again, with its IDs and its
// condition, through another node: answered with the positions of the
// first copy when that committed, written when it never arrived, once
// either way; and the first node, once it learns what became of its
// publish, answers the same. The condition, which the retried events
// themselves fail, does not fail the retry.
func TestRetryThroughAnotherNode(t *testing.T) {
	url := sharedSingle(t)
	for name, drop := range map[string]bool{"committed, answer lost": false, "never arrived": true} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			stream := newStreamName()
			p := newProxy(t, strings.TrimPrefix(url, "nats://"))
			a := openViaProxy(t, p, stream)
			b := openNode(t, url, stream, t.TempDir(), 0)
			_, err := a.Append(ctx, []dcb.Event{{Type: "Ordered", Tags: []string{"order:1"}}}, nil)
			require.NoError(t, err)

			events := []dcb.Event{
				{Type: "Paid", Tags: []string{"order:1"}, Data: []byte(`{"eur":12}`), ID: "pay-1"},
				{Type: "Shipped", Tags: []string{"order:1"}, ID: "ship-1"},
			}
			cond := &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Types: []string{"Paid"}, Tags: []string{"order:1"}}}}, After: 1}
			seen := p.arm(drop)
			actx, giveUp := context.WithCancel(ctx)
			lost := make(chan error, 1)
			go func() {
				_, err := a.Append(actx, events, cond)
				lost <- err
			}()
			<-seen
			if !drop {
				eventually(t, "the stream holds the batch whose answer is lost", func() bool {
					return streamState(t, jsFor(t, url), stream).State.LastSeq == 3
				})
			}
			giveUp()
			require.ErrorContains(t, <-lost, "outcome is not known yet", "the caller learns nothing")

			last, err := b.Append(ctx, events, cond)
			require.NoError(t, err, "sent again through node b")
			assert.Equal(t, uint64(3), last)
			assert.Equal(t, 1, copies(t, url, stream, "pay-1"))

			p.release()
			last, err = a.Append(ctx, events, cond)
			require.NoError(t, err, "and again through node a, once it resolved its publish")
			assert.Equal(t, uint64(3), last)
			for _, n := range []*Node{a, b} {
				head, err := n.CatchUp(ctx)
				require.NoError(t, err)
				assert.Equal(t, uint64(3), head)
			}
			assert.Equal(t, 1, copies(t, url, stream, "pay-1"))
			assert.Equal(t, 1, copies(t, url, stream, "ship-1"))
			converged(t, url, stream, a, b)
		})
	}
}

// TestConcurrentRetriesAcrossNodes: twenty callers send one append (two
// events with IDs, on a condition its own events fail) at once, spread
// over three nodes: the stream holds it once, and every caller is answered
// with its positions, whether its node found it in its own round, among
// what it committed, in its replica, or only after JetStream refused its
// batch because another node's copy got there first. An append reusing
// one of the IDs for another event is then refused on any node.
func TestConcurrentRetriesAcrossNodes(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	ns := make([]*Node, 3)
	for i := range ns {
		ns[i] = openNode(t, url, stream, t.TempDir(), 0)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const callers = 20
	rounds := scaled(t, 5)
	for r := range rounds {
		tag := fmt.Sprintf("order:%d", r)
		events := []dcb.Event{
			{Type: "Paid", Tags: []string{tag}, ID: fmt.Sprintf("pay-%d", r)},
			{Type: "Shipped", Tags: []string{tag}, ID: fmt.Sprintf("ship-%d", r)},
		}
		cond := &dcb.AppendCondition{FailIfEventsMatch: tagQuery(tag), After: uint64(2 * r)}
		lasts := make([]uint64, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				lasts[i], errs[i] = ns[i%len(ns)].Append(ctx, events, cond)
			})
		}
		close(start)
		wg.Wait()
		for i := range callers {
			require.NoError(t, errs[i], "round %d caller %d", r, i)
			assert.Equal(t, uint64(2*r+2), lasts[i], "round %d caller %d", r, i)
		}
	}
	for _, n := range ns {
		head, err := n.CatchUp(ctx)
		require.NoError(t, err)
		require.Equal(t, uint64(2*rounds), head, "one copy of each append")
	}
	for i, n := range ns {
		_, err := n.Append(ctx, []dcb.Event{{Type: "Paid", Tags: []string{"order:0"}, Data: []byte(`{"again":true}`), ID: "pay-0"}}, nil)
		assert.ErrorIs(t, err, dcb.ErrIDConflict, "node %d", i)
	}
	_, err := ns[0].CatchUp(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2*rounds), ns[0].Head(), "the conflicts wrote nothing")

	// Within one batch: an item repeating the one before it is answered
	// with its positions; one reusing its ID for another event is
	// refused, once the batch it conflicts with is committed.
	more := []dcb.Event{{Type: "Refunded", ID: "refund-1"}}
	batches := ns[1].ClusterStats().Batches
	out := ns[1].AppendMany(ctx, []store.AppendItem{{Events: more}, {Events: more}, {Events: []dcb.Event{{Type: "Other", ID: "refund-1"}}}})
	require.NoError(t, out[0].Err)
	require.NoError(t, out[1].Err)
	assert.Equal(t, uint64(2*rounds+1), out[0].Last)
	assert.Equal(t, uint64(2*rounds+1), out[1].Last)
	assert.ErrorIs(t, out[2].Err, dcb.ErrIDConflict)
	assert.Equal(t, batches+1, ns[1].ClusterStats().Batches, "one batch")

	for _, n := range ns {
		_, err := n.CatchUp(ctx)
		require.NoError(t, err)
	}
	converged(t, url, stream, ns...)
	st := sumStats(ns)
	t.Logf("%d rounds of %d callers: %d batches, %d refused by JetStream (another node's copy first)", rounds, callers, st.Batches, st.Conflicts)
}
