package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/possumstore/possum/dcb"
)

// queryHelp says how the query flags of read, tail and append's condition
// make a dcb.Query.
const queryHelp = `query flags: --type and --tag build one query item: the event's type is any
  of its --type values and it carries every one of its --tag values. --or
  starts the next item; an event matching any item matches the query. No
  query flags: every event.
    --type CourseDefined --or --tag course:1 --tag student:ada`

// queryFlags collects the query flags --type, --tag and --or, in the order
// they were given, into the items of a dcb.Query. read and tail register
// them as they are; append routes its --type, --tag and --or here once
// --if-none-match was given.
type queryFlags struct {
	items []dcb.QueryItem
	// open: the last item takes --type and --tag; false before the first
	// and after each --or.
	open bool
	// ors counts --or, for the message about one that ends the flags.
	ors int
}

// register defines --type, --tag and --or on fs.
func (q *queryFlags) register(fs *flag.FlagSet) {
	fs.Func("type", "match events of type `TYPE` (repeat: any of them)", q.addType)
	fs.Func("tag", "match events carrying `TAG` (repeat: all of them)", q.addTag)
	fs.BoolFunc("or", "start another query item: match events of either", q.or)
}

func (q *queryFlags) item() *dcb.QueryItem {
	if !q.open {
		q.items = append(q.items, dcb.QueryItem{})
		q.open = true
	}
	return &q.items[len(q.items)-1]
}

func (q *queryFlags) addType(t string) error {
	if t == "" {
		return errors.New("a type is never empty")
	}
	it := q.item()
	it.Types = append(it.Types, t)
	return nil
}

func (q *queryFlags) addTag(tag string) error {
	if tag == "" {
		return errors.New("a tag is never empty")
	}
	it := q.item()
	it.Tags = append(it.Tags, tag)
	return nil
}

// or is the --or flag: its value is "true" (a boolean flag given bare).
func (q *queryFlags) or(v string) error {
	if v != "true" {
		return fmt.Errorf("--or takes no value")
	}
	if !q.open {
		return errors.New("--or must follow a --type or --tag (it separates two query items)")
	}
	q.open = false
	q.ors++
	return nil
}

// query returns the query the flags describe: dcb.All() when there were
// none.
func (q *queryFlags) query() (dcb.Query, error) {
	if q.ors > 0 && !q.open {
		return dcb.Query{}, errors.New("--or must be followed by a --type or --tag (it separates two query items)")
	}
	query := dcb.Query{Items: q.items}
	if err := query.Validate(); err != nil {
		return dcb.Query{}, err
	}
	return query, nil
}
