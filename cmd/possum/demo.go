package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// runDemo shows the DCB loop on a real store: decide from what was read,
// append on the condition that nothing relevant changed since.
func demoCommand(*flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	return runDemo
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	dir := "possum-demo"
	if len(args) > 0 {
		dir = args[0]
	}
	ctx := context.Background()
	s, err := store.Open(dir, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "store %s: %d events before the demo\n", dir, s.Head())

	course := fmt.Sprintf("course:c%d", s.Head()+1)
	define := dcb.Event{Type: "CourseDefined", Tags: []string{course}, Data: json.RawMessage(`{"capacity":2}`)}
	if _, err := s.Append(ctx, []dcb.Event{define}, nil); err != nil {
		return err
	}
	// Three students try to subscribe to a course of capacity 2. Each
	// decision reads the course's events and appends only if none was added
	// since: the consistency boundary is the course tag.
	boundary := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{course}}}}
	for _, student := range []string{"student:ada", "student:bob", "student:cy"} {
		var seen uint64
		subscribed := 0
		for e, err := range s.Read(ctx, boundary, store.ReadOptions{}) {
			if err != nil {
				return err
			}
			seen = e.Position
			if e.Type == "StudentSubscribed" {
				subscribed++
			}
		}
		if subscribed >= 2 {
			fmt.Fprintf(stdout, "%s: %s is full (%d subscribed), not subscribing\n", student, course, subscribed)
			continue
		}
		ev := dcb.Event{Type: "StudentSubscribed", Tags: []string{course, student}, Metadata: map[string]string{"by": "demo"}}
		pos, err := s.Append(ctx, []dcb.Event{ev}, &dcb.AppendCondition{FailIfEventsMatch: boundary, After: seen})
		switch {
		case errors.Is(err, dcb.ErrAppendConditionFailed):
			fmt.Fprintf(stdout, "%s: %s changed since position %d, retry\n", student, course, seen)
		case err != nil:
			return err
		default:
			fmt.Fprintf(stdout, "%s: subscribed to %s at position %d\n", student, course, pos)
		}
	}
	fmt.Fprintf(stdout, "events of %s:\n", course)
	for e, err := range s.Read(ctx, boundary, store.ReadOptions{}) {
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  %4d  %-18s %v %s\n", e.Position, e.Type, e.Tags, e.Timestamp.Format("15:04:05.000"))
	}
	fmt.Fprintf(stdout, "head is now %d; run the demo again to add more\n", s.Head())
	return s.Close()
}
