package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// eventually polls cond until it holds, failing t after a deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling an outside process's state (the NATS server's), with a deadline
	}
}

// openViaProxy opens a node on stream through p, whose publishes time out
// after 300ms (Open's requests are bounded by its own deadline instead, so
// that a slow machine does not fail it), closed when t ends.
func openViaProxy(t testing.TB, p *proxy, stream string) *Node {
	t.Helper()
	return openNodeWith(t, t.TempDir(), &Options{URL: p.url(), Stream: stream, Timeout: 300 * time.Millisecond})
}

// TestLostAnswerResolvedExactly: a publish whose answer is lost (the
// connection freezes and drops right after the commit message was sent,
// or instead of sending it) is resolved by reading the stream: the append
// is acknowledged once if it committed, published again under the same
// expected head if the stream is still there, and checked again if another
// node appended meanwhile. Never twice, never lost.
func TestLostAnswerResolvedExactly(t *testing.T) {
	url := sharedSingle(t)
	cases := map[string]struct {
		drop bool // the commit never reached the server
		// other, when set, is what another node appends while the answer
		// is lost: its tag ("mine" fails the lost append's condition).
		other string
		// want: the lost append's outcome: its position, or 0 for a
		// failed condition; republished: whether it was published again.
		want        uint64
		republished bool
	}{
		"committed, answer lost":                      {want: 2},
		"committed, answer lost, another node after":  {other: "mine", want: 2},
		"never arrived":                               {drop: true, want: 2, republished: true},
		"never arrived, another node appended":        {drop: true, other: "theirs", want: 3},
		"never arrived, another node failed its test": {drop: true, other: "mine", want: 0},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			stream := newStreamName()
			p := newProxy(t, strings.TrimPrefix(url, "nats://"))
			n := openViaProxy(t, p, stream)
			other := openNode(t, url, stream, t.TempDir(), 0)
			js := jsFor(t, url)
			_, err := n.Append(ctx, []dcb.Event{{Type: "First"}}, nil)
			require.NoError(t, err)

			// The warm-up append may itself have timed out (a slow
			// machine): count from here.
			before := n.ClusterStats()
			seen := p.arm(c.drop)
			type result struct {
				last uint64
				err  error
			}
			done := make(chan result, 1)
			go func() {
				last, err := n.Append(ctx, []dcb.Event{{Type: "Lost", Tags: []string{"mine"}}},
					&dcb.AppendCondition{FailIfEventsMatch: tagQuery("mine"), After: 1})
				done <- result{last, err}
			}()
			<-seen
			if !c.drop {
				eventually(t, "the stream holds the batch whose answer is lost", func() bool {
					return streamState(t, js, stream).State.LastSeq == 2
				})
			}
			if c.other != "" {
				_, err := other.Append(ctx, []dcb.Event{{Type: "Other", Tags: []string{c.other}}}, nil)
				require.NoError(t, err)
			}
			p.release()
			res := <-done
			if c.want == 0 {
				require.ErrorIs(t, res.err, dcb.ErrAppendConditionFailed)
			} else {
				require.NoError(t, res.err)
				assert.Equal(t, c.want, res.last)
			}

			lost := 0
			for _, e := range streamEvents(t, url, stream) {
				if e.Type == "Lost" {
					lost++
				}
			}
			assert.Equal(t, map[bool]int{true: 0, false: 1}[c.want == 0], lost, "copies of the lost append in the stream")
			st := n.ClusterStats()
			assert.Equal(t, uint64(1), st.Unanswered-before.Unanswered)
			assert.Equal(t, c.republished, st.Republished > before.Republished)
			cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			_, err = n.CatchUp(cctx)
			require.NoError(t, err)
			_, err = other.CatchUp(cctx)
			require.NoError(t, err)
			converged(t, url, stream, n, other)
		})
	}
}

// TestMsgIDGuardsABatch: JetStream (v2.15.3) takes Nats-Msg-Id inside an
// atomic batch, and refuses a second batch whose first message carries an
// id it holds, even when the batch's expected head is right: the second
// guard behind the expected head, should a batch ever be published again
// after its first copy committed.
func TestMsgIDGuardsABatch(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	js := jsFor(t, url)
	_, err := js.CreateStream(t.Context(), streamConfig(stream, stream, 1))
	require.NoError(t, err)
	req := &appendRequest{}
	m, err := encodeEvent(stream, streamEvent{Event: dcb.Event{Type: "A"}})
	require.NoError(t, err)
	req.events, req.msgs = []dcb.Event{{Type: "A"}}, []*nats.Msg{m}
	now := time.Now().UTC()
	events := []pendingEvent{{1, dcb.Event{Type: "A", Timestamp: now}}}
	msgs, id, _ := batchMessages([]*appendRequest{req}, events, 0, now)
	ack, err := jetstreamext.PublishMsgBatch(t.Context(), js, msgs)
	require.NoError(t, err)
	require.Equal(t, uint64(1), ack.Sequence)

	again, _, _ := batchMessages([]*appendRequest{req}, events, 1, now)
	again[0].Header.Set(jetstream.MsgIDHeader, id)
	_, err = jetstreamext.PublishMsgBatch(t.Context(), js, again)
	require.Error(t, err)
	assert.Equal(t, jetstream.ErrorCode(errCodeDuplicateMsgID), apiCode(err), "%v", err)
	assert.Equal(t, uint64(1), streamState(t, js, stream).State.LastSeq)
}
