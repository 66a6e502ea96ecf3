package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/possumstore/possum/dcb"
)

// EventsPerTag is how many events carry each order tag of a Shape: a read
// of one tag is a read of exactly this many events.
const EventsPerTag = 10

// DefaultInterleave is how many orders a Shape interleaves at a time unless
// told otherwise, so that the events of one tag lie scattered over 10,000
// positions (as an entity's events do in a live store) rather than side by
// side: appended 1,000 at a time, an order's 10 events are in 10 appends.
const DefaultInterleave = 1000

// orderSteps are the types of an order's events, one per step of its
// life: every order has exactly these EventsPerTag events, in this order.
// The types repeat, so some types are commoner than others.
var orderSteps = [EventsPerTag]string{
	"OrderPlaced", "ItemAdded", "ItemAdded", "ItemAdded", "ItemRemoved",
	"AddressChanged", "OrderConfirmed", "PaymentReceived", "OrderShipped", "OrderDelivered",
}

// Types are the event types of a Shape, each distinct type once.
var Types = []string{
	"OrderPlaced", "ItemAdded", "ItemRemoved", "AddressChanged",
	"OrderConfirmed", "PaymentReceived", "OrderShipped", "OrderDelivered",
}

// Shape is the data of a loaded store, the same for every store and every
// run with the same Events and Seed:
//
//   - Events/EventsPerTag orders; order k's events carry the tags
//     "order:<k>" (exactly EventsPerTag events each) and "customer:<c>"
//     (five orders per customer: 50 events each), and have the types of
//     the steps of an order's life (see Types: some are commoner);
//   - orders are interleaved Interleave (1,000) at a time: the events of
//     one order lie Interleave positions apart, and the events of block k,
//     events k×BlockEvents() to (k+1)×BlockEvents()-1, are those of orders
//     k×Interleave onwards, whole;
//   - each event carries about 120 bytes of JSON data, derived from Seed
//     and its index.
type Shape struct {
	// Events is the number of events: a positive multiple of EventsPerTag.
	Events int
	// Seed determines the data of the events and the order of a read
	// workload's queries.
	Seed uint64
	// Interleave is how many orders are open at a time; 0:
	// DefaultInterleave.
	Interleave int
}

// Validate says whether the shape can be built.
func (sh Shape) Validate() error {
	if sh.Events <= 0 || sh.Events%EventsPerTag != 0 {
		return fmt.Errorf("workload: %d events: want a positive multiple of %d", sh.Events, EventsPerTag)
	}
	if sh.Interleave < 0 {
		return fmt.Errorf("workload: interleave %d", sh.Interleave)
	}
	return nil
}

func (sh Shape) interleave() int {
	if sh.Interleave > 0 {
		return sh.Interleave
	}
	return DefaultInterleave
}

// BlockEvents is the number of events of a block: EventsPerTag×Interleave.
// The events of an order all lie in one block.
func (sh Shape) BlockEvents() int { return EventsPerTag * sh.interleave() }

// Orders is the number of order tags: Events/EventsPerTag.
func (sh Shape) Orders() int { return sh.Events / EventsPerTag }

// OrderTag is the tag of order k, 0 ≤ k < Orders().
func OrderTag(k int) string { return "order:" + strconv.Itoa(k) }

// TagQuery is the query for the events of order k.
func TagQuery(k int) dcb.Query {
	return dcb.Query{Items: []dcb.QueryItem{{Tags: []string{OrderTag(k)}}}}
}

// TypeQuery is the query for the events of type t.
func TypeQuery(t string) dcb.Query {
	return dcb.Query{Items: []dcb.QueryItem{{Types: []string{t}}}}
}

// locate returns the order and the step of event i, 0 ≤ i < Events.
// Events come in blocks of BlockEvents (the last block may be smaller);
// block b holds orders b×Interleave onwards, the step-0 event of each, then
// the step-1 event of each, and so on.
func (sh Shape) locate(i int) (order, step int) {
	open := sh.interleave()
	block := EventsPerTag * open
	b, off := i/block, i%block
	width := open
	if start := b * block; start+block > sh.Events {
		width = (sh.Events - start) / EventsPerTag
	}
	return b*open + off%width, off / width
}

// Event returns event i of the shape, 0 ≤ i < Events. Loaded in order into
// an empty store, event i is at position i+1.
func (sh Shape) Event(i int) dcb.Event {
	order, step := sh.locate(i)
	customer := order / 5
	r := splitmix64(sh.Seed ^ uint64(i)*0x9e3779b97f4a7c15)
	data, _ := json.Marshal(struct {
		Order    int    `json:"order"`
		Customer int    `json:"customer"`
		Step     int    `json:"step"`
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
		Cents    int    `json:"cents"`
		At       string `json:"at"`
	}{order, customer, step, fmt.Sprintf("SKU-%06d", r%1_000_000), int(r>>20%9) + 1, int(r >> 32 % 100_000),
		fmt.Sprintf("2026-11-%02dT%02d:%02d:00Z", 1+int(r>>40%28), int(r>>48%24), int(r>>56%60))})
	return dcb.Event{
		Type: orderSteps[step],
		Tags: []string{OrderTag(order), "customer:" + strconv.Itoa(customer)},
		Data: data,
	}
}

// NewestOf returns the index of the last event of type t (the event at
// position NewestOf+1 when loaded into an empty store), or -1 if no event
// has that type.
func (sh Shape) NewestOf(t string) int {
	for i := sh.Events - 1; i >= 0; i-- {
		if _, step := sh.locate(i); orderSteps[step] == t {
			return i
		}
	}
	return -1
}

// splitmix64 is a fast, well-mixed hash of x: the events' data depends on
// nothing but the seed and the event's index, whatever order they are
// built in.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// errShape reports a store that does not hold what its workload expects.
var errShape = errors.New("workload: store does not hold the expected events")
