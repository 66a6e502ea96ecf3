package decision_test

import (
	"context"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBuildAcrossLostPositions: Build folds no lost position (a known
// marker whose type and tags match, an unknown one that might have) but
// reads past them: Lost lists them, and the condition's After lies after
// them, so the decision's append passes where a condition hard-coded
// before them fails, saying the position was lost.
func TestBuildAcrossLostPositions(t *testing.T) {
	ctx := context.Background()
	for name, head := range map[string]bool{"head": true, "read only": false} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			var es store.EventStore = s
			if !head {
				es = remote{s} // After from what it read alone
			}
			appendEvents(t, s, event("Registered", "user:ada"))
			_, err := s.AppendLost(ctx, 1, []dcb.Event{{Type: "Registered", Tags: []string{"user:ada"}}, {}}, "")
			require.NoError(t, err)
			appendEvents(t, s, event("Other", "user:bob"))

			var m decision.Model
			folded := decision.Add(&m, decision.Projection[[]dcb.SequencedEvent]{
				Query: tagged("user:ada"),
				Fold: func(seen []dcb.SequencedEvent, e dcb.SequencedEvent) ([]dcb.SequencedEvent, error) {
					return append(seen, e), nil
				},
			})
			cond, err := m.Build(ctx, es)
			require.NoError(t, err)
			require.Len(t, folded.State(), 1, "only the event is folded")
			assert.False(t, folded.State()[0].Lost)
			lost := m.Lost()
			require.Len(t, lost, 2)
			assert.Equal(t, dcb.SequencedEvent{Event: event("Registered", "user:ada"), Position: 2, Lost: true}, lost[0])
			assert.Equal(t, dcb.SequencedEvent{Position: 3, Lost: true}, lost[1], "an unknown marker is counted though Query.Matches says no")
			assert.GreaterOrEqual(t, cond.After, uint64(3))

			_, err = s.Append(ctx, []dcb.Event{event("Decided", "user:ada")}, &dcb.AppendCondition{FailIfEventsMatch: tagged("user:ada"), After: 1})
			require.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "a condition hard-coded before the markers")
			assert.ErrorContains(t, err, "position 2, after the condition's 1, was lost")
			_, err = es.Append(ctx, []dcb.Event{event("Decided", "user:ada")}, &cond)
			require.NoError(t, err, "the decision that read them passes")

			_, err = m.Build(ctx, es)
			require.NoError(t, err)
			assert.Len(t, m.Lost(), 2, "a second Build lists them again, once")
		})
	}
}
