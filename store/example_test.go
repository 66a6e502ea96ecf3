package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// Open a store, append events, read them back by tag.
func Example() {
	dir, err := os.MkdirTemp("", "possum-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(dir, nil) // nil options: durable defaults
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()

	last, err := s.Append(ctx, []dcb.Event{
		{Type: "CourseDefined", Tags: []string{"course:c1"}, Data: json.RawMessage(`{"capacity":10}`)},
		{Type: "CourseDefined", Tags: []string{"course:c2"}, Data: json.RawMessage(`{"capacity":20}`)},
		{Type: "StudentSubscribed", Tags: []string{"course:c1", "student:s1"}},
	}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("appended up to position", last)

	c1 := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"course:c1"}}}}
	for e, err := range s.Read(ctx, c1, store.ReadOptions{}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Position, e.Type, e.Tags, string(e.Data))
	}
	// Output:
	// appended up to position 3
	// 1 CourseDefined [course:c1] {"capacity":10}
	// 3 StudentSubscribed [course:c1 student:s1]
}

// A conditional append: decide from what you read, and append on the
// condition that nothing matching changed since.
func ExampleStore_Append() {
	dir, err := os.MkdirTemp("", "possum-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()

	// Read the events the decision depends on, noting the last position.
	username := dcb.Query{Items: []dcb.QueryItem{{Types: []string{"AccountRegistered"}, Tags: []string{"username:alice"}}}}
	var seen uint64
	for e, err := range s.Read(ctx, username, store.ReadOptions{}) {
		if err != nil {
			panic(err)
		}
		seen = e.Position
	}
	fmt.Println("alice taken:", seen != 0)
	cond := &dcb.AppendCondition{FailIfEventsMatch: username, After: seen}

	// Two accounts decided on the same read; the first append wins.
	for _, account := range []string{"a1", "a2"} {
		_, err := s.Append(ctx, []dcb.Event{{
			Type: "AccountRegistered",
			Tags: []string{"account:" + account, "username:alice"},
		}}, cond)
		switch {
		case errors.Is(err, dcb.ErrAppendConditionFailed):
			fmt.Println(account, "lost: read again and decide again")
		case err != nil:
			panic(err)
		default:
			fmt.Println(account, "registered alice")
		}
	}
	// Output:
	// alice taken: false
	// a1 registered alice
	// a2 lost: read again and decide again
}

// Subscribe catches up with the stored events, then follows new ones as
// they are appended, until the loop stops or the context ends.
func ExampleStore_Subscribe() {
	dir, err := os.MkdirTemp("", "possum-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := store.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	ordered := func(n int) dcb.Event {
		return dcb.Event{Type: "OrderPlaced", Tags: []string{fmt.Sprintf("order:%d", n)}}
	}
	if _, err := s.Append(ctx, []dcb.Event{ordered(1)}, nil); err != nil {
		panic(err)
	}
	// Another goroutine appends while we follow.
	done := make(chan error, 1)
	go func() {
		for n := 2; n <= 3; n++ {
			if _, err := s.Append(ctx, []dcb.Event{ordered(n)}, nil); err != nil {
				cancel() // ends the Subscribe below
				done <- err
				return
			}
		}
		done <- nil
	}()

	orders := dcb.Query{Items: []dcb.QueryItem{{Types: []string{"OrderPlaced"}}}}
	for e, err := range s.Subscribe(ctx, orders, 0) {
		if err != nil {
			panic(err)
		}
		fmt.Println(e.Position, e.Tags)
		if e.Position == 3 {
			break
		}
	}
	if err := <-done; err != nil {
		panic(err)
	}
	// Output:
	// 1 [order:1]
	// 2 [order:2]
	// 3 [order:3]
}
