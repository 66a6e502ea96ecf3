package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"golang.org/x/term"
)

// appendHelp follows the flags in `possum append --help`.
const appendHelp = `DIR is created when it holds no store.
One event from flags; prints its position. With --if-none-match, the event
is appended only if no event after --after matches the query flags that follow
--if-none-match (--type, --tag, --or, as in possum read; none: any event);
else it exits 1, naming the event that matched, and writes nothing:
  possum append DIR --type StudentEnrolled --tag course:1 --tag student:ada \
      --if-none-match --tag course:1 --or --tag student:ada --after 5
Many events as NDJSON on stdin (with --stdin, DIR -, or no --type when stdin is
not a terminal): one event a line, the keys type, tags, data, metadata, and
id and timestamp when set (the position of possum read's lines is ignored, so
the pipe below copies a store exactly onto an empty one), appended --batch
events at a time (fewer when they would pass 16 MiB, or the request limit of the
process serving the store), each batch checked whole before it is written:
  possum read OLD | possum append NEW
A lost position's line ({"position":N,"lost":true}, type and tags when known)
is appended as a lost position (a marker, recorded in NEW's LOST file), to a
store this process opens only, not through a serving process.
A bad line stops the import: the lines before it are appended, none after.
exit 0 appended; 1 the condition failed, or an import stopped at a bad line
after appending the lines before it (stderr names them); 2 nothing was written:
bad usage or input, or another process has the store open.`

// defaultBatch is how many NDJSON lines one Append takes.
const defaultBatch = 1000

// appendFlags are the flags of append. Until --if-none-match, --type and
// --tag describe the event; after it, they and --or are the condition's
// query flags.
type appendFlags struct {
	event dcb.Event
	cond  *queryFlags // nil until --if-none-match
	after uint64
	stdin bool
	batch int
}

func (a *appendFlags) register(fs *flag.FlagSet) {
	fs.Func("type", "the event's `TYPE`; after --if-none-match, a type the condition matches (repeat: any of them)", a.setType)
	fs.Func("tag", "a `TAG` of the event (repeat); after --if-none-match, a tag the condition matches (repeat: all of them)", a.addTag)
	fs.BoolFunc("or", "after --if-none-match: start another item of the condition's query", a.or)
	fs.Func("data", "the event's data, `JSON`", a.setData)
	fs.Func("meta", "metadata `KEY=VALUE` of the event (repeat)", a.addMeta)
	fs.Func("id", "the event's `ID`: the same append sent again (after a lost answer) is answered with its position, not written twice", a.setID)
	fs.Func("timestamp", "when the event happened, `RFC3339` (to the nanosecond; default: when the store accepts it)", a.setTimestamp)
	fs.BoolFunc("if-none-match", "append only if no event after --after matches the query flags that follow", a.ifNoneMatch)
	fs.Uint64Var(&a.after, "after", 0, "with --if-none-match: only events after `POSITION` count (0: every event)")
	fs.BoolVar(&a.stdin, "stdin", false, "read events as NDJSON from stdin")
	fs.IntVar(&a.batch, "batch", defaultBatch, "NDJSON: append `N` events at a time (fewer when they would pass the size limit)")
}

func (a *appendFlags) setType(t string) error {
	switch {
	case a.cond != nil:
		return a.cond.addType(t)
	case t == "":
		return errors.New("a type is never empty")
	case a.event.Type != "":
		return fmt.Errorf("an event has one type, got %q and %q (a type for the condition goes after --if-none-match)", a.event.Type, t)
	}
	a.event.Type = t
	return nil
}

func (a *appendFlags) addTag(tag string) error {
	switch {
	case a.cond != nil:
		return a.cond.addTag(tag)
	case tag == "":
		return errors.New("a tag is never empty")
	}
	a.event.Tags = append(a.event.Tags, tag)
	return nil
}

func (a *appendFlags) or(v string) error {
	if a.cond == nil {
		return errors.New("--or separates items of the condition's query: give --if-none-match first")
	}
	return a.cond.or(v)
}

func (a *appendFlags) setData(v string) error {
	if !json.Valid([]byte(v)) {
		return errors.New("not valid JSON")
	}
	a.event.Data = json.RawMessage(v)
	return nil
}

func (a *appendFlags) addMeta(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", kv)
	}
	if _, dup := a.event.Metadata[k]; dup {
		return fmt.Errorf("metadata key %q given twice", k)
	}
	if a.event.Metadata == nil {
		a.event.Metadata = map[string]string{}
	}
	a.event.Metadata[k] = v
	return nil
}

func (a *appendFlags) setID(id string) error {
	if id == "" {
		return errors.New("an ID is never empty (leave --id out for an event without one)")
	}
	a.event.ID = id
	return nil
}

func (a *appendFlags) setTimestamp(v string) error {
	ts, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("not an RFC 3339 time (2026-12-04T10:00:00Z): %q", v)
	}
	if ts.IsZero() {
		return errors.New("the zero time is no timestamp (leave --timestamp out for the store's)")
	}
	a.event.Timestamp = ts
	return nil
}

func (a *appendFlags) ifNoneMatch(v string) error {
	if v != "true" {
		return errors.New("--if-none-match takes no value: the query flags follow it")
	}
	if a.cond != nil {
		return errors.New("--if-none-match given twice")
	}
	a.cond = &queryFlags{}
	return nil
}

// describesEvent reports whether flags describe one event or its
// condition, which NDJSON input cannot take.
func (a *appendFlags) describesEvent() bool {
	e := a.event
	return e.Type != "" || len(e.Tags) > 0 || e.Data != nil || e.Metadata != nil || e.ID != "" || !e.Timestamp.IsZero() || a.cond != nil
}

// condition returns the append condition the flags give, nil for none.
func (a *appendFlags) condition() (*dcb.AppendCondition, error) {
	if a.cond == nil {
		return nil, nil
	}
	q, err := a.cond.query()
	if err != nil {
		return nil, fmt.Errorf("--if-none-match: %w", err)
	}
	return &dcb.AppendCondition{FailIfEventsMatch: q, After: a.after}, nil
}

func appendCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	var a appendFlags
	a.register(fs)
	return func(args []string, stdout, stderr io.Writer) error {
		dir := args[0]
		dash := len(args) == 2
		if dash && args[1] != "-" {
			return fmt.Errorf("the argument after DIR can only be -, for stdin; got %q", args[1])
		}
		if given(fs, "after") && a.cond == nil {
			return errors.New("--after belongs to a condition: give --if-none-match too")
		}
		if a.batch < 1 {
			return fmt.Errorf("--batch %d: a batch holds 1 event or more", a.batch)
		}
		importing := a.stdin || dash
		if !importing && a.event.Type == "" {
			if a.describesEvent() {
				return errors.New("the event needs a --type, before any --if-none-match (after it, --type is the condition's)")
			}
			if term.IsTerminal(int(os.Stdin.Fd())) {
				return errors.New("give the event's --type, or NDJSON on stdin")
			}
			importing = true
		}
		if importing {
			if a.describesEvent() {
				return errors.New("NDJSON on stdin describes its own events: --type, --tag, --data, --meta and --if-none-match are for one event from flags")
			}
			return runImport(dir, os.Stdin, a.batch, stdout, stderr)
		}
		cond, err := a.condition()
		if err != nil {
			return err
		}
		return runAppend(context.Background(), dir, a.event, cond, stdout, stderr)
	}
}

// runAppend appends e under cond to the store in dir and prints its
// position. A failed condition is exit 1, with the event that matched.
func runAppend(ctx context.Context, dir string, e dcb.Event, cond *dcb.AppendCondition, stdout, stderr io.Writer) error {
	if err := e.Validate(); err != nil {
		return err
	}
	w, err := openWriter(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	pos, err := w.Append(ctx, []dcb.Event{e}, cond)
	if errors.Is(err, dcb.ErrAppendConditionFailed) {
		fmt.Fprintf(stderr, "possum append: not appended: %s; nothing was written\n", conflict(ctx, w, cond))
		return exitError{1}
	}
	if err != nil {
		return err
	}
	// The event file too, for whoever looks: Close does not wait for it.
	if p, ok := w.(interface {
		WaitProjected(context.Context, uint64) error
	}); ok {
		if err := p.WaitProjected(ctx, pos); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, pos)
	return w.Close()
}

// conflict describes the first event that failed cond.
func conflict(ctx context.Context, w eventWriter, cond *dcb.AppendCondition) string {
	for e, err := range w.Read(ctx, cond.FailIfEventsMatch, store.ReadOptions{From: cond.After + 1, Limit: 1}) {
		if err != nil {
			break
		}
		return fmt.Sprintf("event %d (%s %s) matches the condition and comes after position %d",
			e.Position, e.Type, strings.Join(e.Tags, " "), cond.After)
	}
	return fmt.Sprintf("an event after position %d matches the condition", cond.After)
}
