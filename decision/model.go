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
	// and the projection only widens the condition. Fold never sees a
	// lost position (dcb.SequencedEvent.Lost): it has no data to fold (see
	// Model.Lost).
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
	if p.p.Fold == nil || e.Lost || !p.p.Query.Matches(e.Event) {
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
	lost        []dcb.SequencedEvent
}

// Lost returns the lost positions (dcb.SequencedEvent.Lost) the last Build
// read: markers of events damaged beyond repair that matched, or (of
// unknown type) might have matched, the model's query. No Fold saw them;
// the condition Build returned lies after them, so the decision's append
// does not fail on them. A decision that must not be taken without every
// event it depends on refuses when this is not empty.
func (m *Model) Lost() []dcb.SequencedEvent { return m.lost }

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
// A lost position the Read yields (a marker whose known type and tags
// match the union, or one of unknown type, which might have matched) is
// folded by no projection, but counts for After like any event read, so
// that the condition does not fail on it; Lost lists them.
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
	m.lost = nil
	for e, err := range s.Read(ctx, q, store.ReadOptions{}) {
		if err != nil {
			return dcb.AppendCondition{}, fmt.Errorf("decision: build: %w", err)
		}
		if e.Lost {
			// Counted (After moves past it), never folded.
			m.lost = append(m.lost, e)
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
