package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// choice is what a decider records in the data of the event it appends:
// how many events of its counter it saw, and the last position among them
// (the After of its condition).
type choice struct {
	Decider string `json:"decider"`
	Seen    int    `json:"seen"`
	After   uint64 `json:"after"`
}

// decide reads the events of tag on s and appends one more under the
// condition that none was added since, again until the condition holds.
// It returns the position acknowledged and how many times the condition
// failed.
func decide(ctx context.Context, s interface {
	store.Events
	Append(context.Context, []dcb.Event, *dcb.AppendCondition) (uint64, error)
}, who, tag string) (uint64, int, error) {
	q := tagQuery(tag)
	for conflicts := 0; ; conflicts++ {
		d := choice{Decider: who}
		for e, err := range s.Read(ctx, q, store.ReadOptions{}) {
			if err != nil {
				return 0, conflicts, err
			}
			d.Seen++
			d.After = e.Position
		}
		data, _ := json.Marshal(d)
		// Each decision has an ID of its own (a decider decides on a
		// counter once per count it saw), so that replicas converge on
		// IDs too.
		id := fmt.Sprintf("%s/%s/%d", who, tag, d.Seen)
		pos, err := s.Append(ctx, []dcb.Event{{Type: "Counted", Tags: []string{tag}, Data: data, ID: id}},
			&dcb.AppendCondition{FailIfEventsMatch: q, After: d.After})
		if errors.Is(err, dcb.ErrAppendConditionFailed) {
			continue
		}
		return pos, conflicts, err
	}
}

// checkDecisions verifies every decision in events (the whole store, in
// order) against the events before it, and that every acknowledged
// position holds the append its decider made, once.
func checkDecisions(t *testing.T, events []dcb.SequencedEvent, acked map[uint64]string) {
	t.Helper()
	seen := map[string][]uint64{} // tag -> positions so far
	violations := 0
	for i, e := range events {
		require.Equal(t, uint64(i+1), e.Position, "positions are gap-free")
		if e.Type != "Counted" {
			continue
		}
		var d choice
		require.NoError(t, json.Unmarshal(e.Data, &d))
		tag := e.Tags[0]
		before := seen[tag]
		var last uint64
		if len(before) > 0 {
			last = before[len(before)-1]
		}
		if d.Seen != len(before) || d.After != last {
			violations++
			t.Errorf("position %d (%s): decided on %d events up to %d, the store had %d up to %d", e.Position, tag, d.Seen, d.After, len(before), last)
		}
		seen[tag] = append(before, e.Position)
	}
	assert.Zero(t, violations)
	for pos, who := range acked {
		require.LessOrEqual(t, pos, uint64(len(events)), "acknowledged position %d is in the store", pos)
		var d choice
		require.NoError(t, json.Unmarshal(events[pos-1].Data, &d))
		assert.Equal(t, who, d.Decider, "position %d holds the append acknowledged there", pos)
	}
}

// TestThreeNodesDecideConcurrently: three nodes on a three-server cluster
// with an R3 stream, each with several deciders contending for a few
// counters (the DCB consistency check: read, decide, append on the
// condition that nothing changed) and writers appending under conditions
// no one else can fail. Every decision matches the events before it, every
// acknowledged append is where it was acknowledged, the unrelated appends
// never fail, and the three replicas converge on the stream's events.
func TestThreeNodesDecideConcurrently(t *testing.T) {
	url := sharedCluster(t)
	name := newStreamName()
	const nodes, deciders, counters = 3, 4, 3
	decisions := scaled(t, 6)
	ns := make([]*Node, nodes)
	for i := range ns {
		ns[i] = openNode(t, url, name, t.TempDir(), 3)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	var mu sync.Mutex
	acked := map[uint64]string{}
	conflicts := 0
	var wg sync.WaitGroup
	for i, n := range ns {
		for d := range deciders {
			who := fmt.Sprintf("n%d.d%d", i, d)
			wg.Go(func() {
				for k := range decisions {
					pos, c, err := decide(ctx, n, who, fmt.Sprintf("counter:%d", (d+k)%counters))
					if !assert.NoError(t, err, who) {
						return
					}
					mu.Lock()
					_, dup := acked[pos]
					acked[pos] = who
					conflicts += c
					mu.Unlock()
					assert.False(t, dup, "position %d acknowledged twice", pos)
				}
			})
		}
		// A writer whose condition only its own events can fail: it must
		// never fail, however much the other nodes append meanwhile.
		wg.Go(func() {
			tag := fmt.Sprintf("own:n%d", i)
			var after uint64
			for k := range decisions {
				data, _ := json.Marshal(choice{Decider: tag, Seen: k, After: after})
				pos, err := n.Append(ctx, []dcb.Event{{Type: "Counted", Tags: []string{tag}, Data: data}},
					&dcb.AppendCondition{FailIfEventsMatch: tagQuery(tag), After: after})
				if !assert.NoError(t, err, "an append no one else can conflict with") {
					return
				}
				mu.Lock()
				acked[pos] = tag
				mu.Unlock()
				after = pos
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())
	total := uint64(nodes * (deciders + 1) * decisions)
	require.Len(t, acked, int(total))

	for _, n := range ns {
		head, err := n.CatchUp(ctx)
		require.NoError(t, err)
		require.Equal(t, total, head)
	}
	first := readAll(t, ns[0])
	checkDecisions(t, first, acked)
	converged(t, url, name, ns...)
	stats := sumStats(ns)
	t.Logf("%d appends in %d batches; %d stream conflicts (batches checked again), %d failed conditions (decided again)", total, stats.Batches, stats.Conflicts, conflicts)
}

// converged checks that every node's replica holds the stream's events at
// the stream's positions, field for field: data, tags and metadata byte for
// byte, the same IDs, the same timestamps to the nanosecond; and a lost
// position's marker, of the same type and tags, where the stream holds one.
func converged(t *testing.T, url, stream string, ns ...*Node) {
	t.Helper()
	want := streamEvents(t, url, stream)
	for i, n := range ns {
		got := readAll(t, n)
		require.Len(t, got, len(want), "node %d", i)
		for j := range want {
			require.Equal(t, uint64(j+1), got[j].Position)
			require.Equal(t, "", mismatch(want[j], got[j], false), "node %d position %d", i, j+1)
		}
	}
}

// sumStats adds up the counters of nodes.
func sumStats(nodes []*Node) Stats {
	var st Stats
	for _, n := range nodes {
		s := n.ClusterStats()
		st.Batches += s.Batches
		st.Events += s.Events
		st.Conflicts += s.Conflicts
		st.Unanswered += s.Unanswered
		st.Republished += s.Republished
	}
	return st
}
