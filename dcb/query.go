package dcb

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// QueryItem selects events by type and tags.
type QueryItem struct {
	// Types: the event's type is any of these; empty means any type.
	Types []string
	// Tags: the event carries all of these; empty means no tag constraint.
	Tags []string
}

// Query selects the events that match any of its items. A Query with no items
// selects every event (see All).
type Query struct {
	Items []QueryItem
}

// All returns the query that matches every event.
func All() Query { return Query{} }

// IsAll reports whether q matches every event.
func (q Query) IsAll() bool { return len(q.Items) == 0 }

// Validate reports why q cannot be used, as an error wrapping
// ErrInvalidQuery, or nil. An item with neither types nor tags is invalid:
// it would silently match everything, which is what All is for.
func (q Query) Validate() error {
	for i, it := range q.Items {
		if len(it.Types) == 0 && len(it.Tags) == 0 {
			return fmt.Errorf("%w: item %d has neither types nor tags", ErrInvalidQuery, i)
		}
		for _, t := range it.Types {
			if t == "" || !utf8.ValidString(t) {
				return fmt.Errorf("%w: item %d: type %q is empty or not valid UTF-8", ErrInvalidQuery, i, t)
			}
		}
		for _, tag := range it.Tags {
			if err := validateTag(tag); err != nil {
				return fmt.Errorf("%w: item %d: %v", ErrInvalidQuery, i, err)
			}
		}
	}
	return nil
}

// Matches reports whether e matches q.
func (q Query) Matches(e Event) bool {
	if q.IsAll() {
		return true
	}
	for _, it := range q.Items {
		if it.Matches(e) {
			return true
		}
	}
	return false
}

// Matches reports whether e's type is one of it.Types (or there are none)
// and e carries every tag in it.Tags.
func (it QueryItem) Matches(e Event) bool {
	if len(it.Types) > 0 && !slices.Contains(it.Types, e.Type) {
		return false
	}
	for _, tag := range it.Tags {
		if !slices.Contains(e.Tags, tag) {
			return false
		}
	}
	return true
}

// AppendCondition guards an append: the append fails with
// ErrAppendConditionFailed when any stored event with a position greater than
// After matches FailIfEventsMatch.
type AppendCondition struct {
	FailIfEventsMatch Query
	// After is exclusive: only events with Position > After count. 0 means
	// every event counts. An After beyond the store's head is allowed.
	After uint64
}
