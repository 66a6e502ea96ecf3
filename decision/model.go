package decision

import (
	"context"
	"errors"
	"fmt"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// Projection declares one fact a decision depends on: the events it is
// built from, the state before any of them, and how each one changes it.
type Projection[S any] struct {
	// Query selects the events the state depends on. It is part of the
	// append condition: a new matching event fails the decision's append.
	Query dcb.Query
	// Initial is the state before any event; every Build starts from it.
	// A Fold that changes a map, slice or pointer state in place changes
	// Initial with it, and a second Build of the model would start from
	// the first one's result: declare such a projection anew for each
	// decision (inside the function Retry runs), or return a copy.
	Initial S
	// Fold returns the state after e, an event matching Query, given the
	// state before it. Events come in position order. An error (data that
	// does not decode, say) fails Build. nil: the state stays Initial,
	// and the projection only widens the condition.
	Fold func(state S, e dcb.SequencedEvent) (S, error)
}

// Projected is the handle Add returns: the state of one projection of a
// model, as of the model's last Build.
type Projected[S any] struct {
	p     Projection[S]
	state S
}

// State returns the projection's state: its Initial before Build, and the
// fold of its matching events after a successful one.
func (p *Projected[S]) State() S { return p.state }

func (p *Projected[S]) query() dcb.Query { return p.p.Query }
func (p *Projected[S]) reset()           { p.state = p.p.Initial }

func (p *Projected[S]) apply(e dcb.SequencedEvent) error {
	if p.p.Fold == nil || !p.p.Query.Matches(e.Event) {
		return nil
	}
	s, err := p.p.Fold(p.state, e)
	if err != nil {
		return err
	}
	p.state = s
	return nil
}

// projection is a Projected of any state type, as a Model holds it.
type projection interface {
	query() dcb.Query
	reset()
	apply(e dcb.SequencedEvent) error
}

// Model is the set of projections one decision depends on. The zero value
// is an empty model, ready for Add. A Model is not safe for concurrent use;
// build one per decision.
type Model struct {
	projections []projection
}

// Add registers p with m and returns its handle, whose State is p.Initial
// until m is built.
func Add[S any](m *Model, p Projection[S]) *Projected[S] {
	h := &Projected[S]{p: p, state: p.Initial}
	m.projections = append(m.projections, h)
	return h
}

// Query returns the union of the projections' queries: the events the
// decision depends on. It matches every event when any projection's query
// does.
func (m *Model) Query() dcb.Query {
	var items []dcb.QueryItem
	for _, p := range m.projections {
		q := p.query()
		if q.IsAll() {
			return dcb.All()
		}
		items = append(items, q.Items...)
	}
	return dcb.Query{Items: items}
}

// Build reads the events of m's projections from s with one Read of their
// union, folds each projection over the events its own query matches, and
// returns the condition under which a decision taken on these states may be
// appended: no event matching the union after the last position read.
//
// That position, the condition's After, is the later of the last matching
// event's position (0 when none matched) and the head as Build began
// (s.HeadContext, whose error Build returns). Both are correct:
// the read saw every matching event up to either. The head says more when
// little or nothing matched: "nothing relevant since position N", the
// state the decision was taken on, rather than "nothing relevant ever",
// and a store that scans to check a condition scans less. Build asks for
// the head before the Read, never after: the Read sees at least what the
// head said, so no event can fall between what was read and what the
// condition covers.
//
// Build starts every projection from its Initial state, so a model can be
// built again. On an error the states are partial: do not decide on them.
func (m *Model) Build(ctx context.Context, s store.Events) (dcb.AppendCondition, error) {
	if len(m.projections) == 0 {
		// The union of no queries would be the empty Query: every event.
		return dcb.AppendCondition{}, errors.New("decision: build: the model has no projection")
	}
	q := m.Query()
	after, err := s.HeadContext(ctx)
	if err != nil {
		return dcb.AppendCondition{}, fmt.Errorf("decision: build: %w", err)
	}
	for _, p := range m.projections {
		p.reset()
	}
	for e, err := range s.Read(ctx, q, store.ReadOptions{}) {
		if err != nil {
			return dcb.AppendCondition{}, fmt.Errorf("decision: build: %w", err)
		}
		for _, p := range m.projections {
			if err := p.apply(e); err != nil {
				return dcb.AppendCondition{}, fmt.Errorf("decision: build: fold of position %d (%s): %w", e.Position, e.Type, err)
			}
		}
		after = max(after, e.Position)
	}
	return dcb.AppendCondition{FailIfEventsMatch: q, After: after}, nil
}
