package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/wire"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

const (
	// maxLine is the longest NDJSON line an import takes: the WAL's record
	// limit.
	maxLine = 64 << 20
	// maxBatchBytes bounds the NDJSON bytes of one batch appended to a
	// store this process opened, far below the record limit, whatever
	// --batch says. Through a serving process, the bound is its request
	// limit (see importer.batchBytes).
	maxBatchBytes = 16 << 20
)

// ndjsonEvent is one line of NDJSON input: the keys of an event file
// (those possum read prints). The timestamp and id are kept; position is
// accepted and ignored: the store assigns positions, in order (onto an
// empty store, those the lines say). A line with "lost":true is a lost
// position's marker (type and tags when known, nothing else), appended as
// one (store.AppendLost), so that a copy keeps the positions its source
// lost.
type ndjsonEvent struct {
	Lost      bool              `json:"lost"`
	Type      string            `json:"type"`
	Tags      []string          `json:"tags"`
	Data      json.RawMessage   `json:"data"`
	Metadata  map[string]string `json:"metadata"`
	ID        string            `json:"id"`
	Timestamp *time.Time        `json:"timestamp"`
	Position  json.RawMessage   `json:"position"`
	// RawData: the bytes of data written over several lines, which the
	// line carries compacted (storedir.AppendEvent): kept as they were.
	RawData *string `json:"rawData"`
}

// parseLine parses and validates one line of NDJSON input: an event, or
// (lost) a lost position's marker.
func parseLine(line []byte) (e dcb.Event, lost bool, err error) {
	// Before decoding: encoding/json turns a byte that is not UTF-8 into
	// U+FFFD, and two different tags would be stored as one.
	if err := wire.CheckEventUTF8(line); err != nil {
		return dcb.Event{}, false, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l ndjsonEvent
	if err := dec.Decode(&l); err != nil {
		return dcb.Event{}, false, jsonProblem(err)
	}
	if dec.More() {
		return dcb.Event{}, false, errors.New("more than one JSON value on the line")
	}
	if l.Lost {
		// The store's own rule (storedir's decoder) says what a marker
		// may carry; AppendLost checks the type and tags.
		f := storedir.EventJSON{Lost: true, Type: l.Type, Tags: l.Tags, Data: l.Data, RawData: l.RawData, Metadata: l.Metadata, Timestamp: l.Timestamp, ID: l.ID}
		if err := f.CheckMarker(); err != nil {
			return dcb.Event{}, true, err
		}
		e := dcb.Event{Type: l.Type, Tags: l.Tags}
		if l.Type != "" {
			err = e.Validate()
		}
		return e, true, err
	}
	e, err = parseEvent(l)
	return e, false, err
}

// parseEvent returns the event of a line that is no marker, validated.
func parseEvent(l ndjsonEvent) (dcb.Event, error) {
	if l.RawData != nil {
		l.Data = json.RawMessage(*l.RawData)
	}
	e, err := wire.Event{Type: l.Type, Tags: l.Tags, Data: l.Data, Metadata: l.Metadata, ID: l.ID, Timestamp: l.Timestamp}.Event()
	if err != nil {
		return dcb.Event{}, err
	}
	return e, e.Validate()
}

// jsonProblem says what is wrong with a line in the words of its keys.
func jsonProblem(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Errorf("%s: want %s, got a JSON %s", te.Field, te.Type, te.Value)
	case errors.As(err, &se):
		return fmt.Errorf("not JSON: %v (byte %d)", se, se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("not JSON: the line ends inside a value")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("unknown key %s (an event has type, tags, data, metadata, id, timestamp; position, rawData and lost as possum read writes them)", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return err
}

// importer appends NDJSON events to a store in batches and keeps count of
// what it appended.
type importer struct {
	dir   string
	w     eventWriter // opened at the first batch
	start time.Time
	// elapsed is the time the appends took, without the wait for the
	// projection.
	elapsed time.Duration
	bar     *importBar
	events  int    // appended
	lost    int    // of them, lost positions' markers
	lines   int    // the lines read up to the last one appended, blank ones too
	first   uint64 // positions appended (or held already)
	last    uint64
	nbatch  int // batches appended
	// head is the store's head when the import began; held, the events
	// of batches the store held already (their IDs: answered with their
	// positions at or below head, nothing written).
	head uint64
	held int
	// batchBytes bounds the bytes of a batch, as eventBytes counts them;
	// set when the store is opened.
	batchBytes int
	scratch    []byte // for eventBytes
}

// runImport appends the NDJSON events of in to the store in dir, batch at
// a time. A bad line stops it: the lines before it are appended, none
// after. Nothing appended is exit 2, a partial import exit 1.
func runImport(dir string, in *os.File, batch int, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	im := &importer{dir: dir, start: time.Now(), bar: newImportBar(in, stderr)}
	err := im.run(ctx, in, batch)
	if errors.Is(err, errNoWriter) {
		return err // it says nothing was written
	}
	im.elapsed = time.Since(im.start)
	im.bar.finish()
	if im.w != nil {
		im.waitProjected(ctx)
		err = errors.Join(err, im.w.Close())
	}
	if im.events+im.held > 0 {
		fmt.Fprintln(stdout, im.summary())
		// Through a serving process, its projector goes on as ever.
		if _, local := im.w.(*store.Store); local {
			if note := projectionNote(dir, im.last); note != "" {
				fmt.Fprintln(stdout, note)
			}
		}
	}
	switch {
	case err == nil && im.events+im.held == 0:
		return errors.New("no events on stdin (give --type for one event from flags)")
	case err == nil:
		return nil
	case im.events == 0:
		return fmt.Errorf("%w; nothing was appended", err)
	}
	fmt.Fprintf(stderr, "possum append: %v; lines 1..%d were appended (positions %d..%d), nothing after them\n", err, im.lines, im.first, im.last)
	return exitError{1}
}

// run reads lines, appending every batch lines (fewer when they would pass
// im.batchBytes), and the lines before a bad one.
func (im *importer) run(ctx context.Context, in io.Reader, batch int) error {
	counted := &countingReader{r: in}
	sc := bufio.NewScanner(counted)
	sc.Buffer(nil, maxLine)
	var pending []dcb.Event
	pendingLost := false // pending holds lost markers, appended together
	lineNo, pendingBytes := 0, 0
	// flush appends the pending events, those of the lines up to through.
	flush := func(through int) error {
		if len(pending) > 0 {
			appendBatch := im.append
			if pendingLost {
				appendBatch = im.appendLost
			}
			err := appendBatch(ctx, pending)
			if errors.Is(err, errNoWriter) {
				return err
			}
			if err != nil {
				return fmt.Errorf("appending lines %d..%d: %w", im.lines+1, through, err)
			}
			im.bar.update(counted.n, im.events)
		}
		im.lines = through
		pending, pendingBytes = pending[:0], 0
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		e, lost, err := parseLine(line)
		if err != nil {
			return errors.Join(flush(lineNo-1), fmt.Errorf("line %d: %w", lineNo, err))
		}
		if im.w == nil {
			if err := im.open(); err != nil {
				return err
			}
		}
		if _, local := im.w.(*store.Store); lost && !local {
			return errors.Join(flush(lineNo-1), fmt.Errorf("line %d: a lost position (\"lost\":true) is appended only to a store this process opens as its writer, not through the process serving %s: stop it, or import into a store no process has open", lineNo, im.dir))
		}
		// A batch that would pass the bound, or of the other kind (events,
		// lost markers), goes before this line.
		size := im.eventBytes(e, line)
		if len(pending) > 0 && (pendingBytes+size > im.batchBytes || lost != pendingLost) {
			if err := flush(lineNo - 1); err != nil {
				return err
			}
		}
		pending, pendingLost = append(pending, e), lost
		if pendingBytes += size; len(pending) >= batch {
			if err := flush(lineNo); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("longer than %d MiB", maxLine>>20)
		}
		return errors.Join(flush(lineNo), fmt.Errorf("line %d: %w", lineNo+1, err))
	}
	return flush(lineNo)
}

// errNoWriter marks the failure to open the store: nothing was appended.
var errNoWriter = errors.New("the store could not be opened")

// open opens the store (or a client of the process serving it), and sets
// the bound on a batch's bytes: through a server, its request limit, which
// the JSON of a batch must fit; embedded, maxBatchBytes of NDJSON.
func (im *importer) open() error {
	w, err := openWriter(im.dir)
	if err != nil {
		return &noWriterError{err}
	}
	im.w = w
	if im.head, err = w.HeadContext(context.Background()); err != nil {
		return &noWriterError{err}
	}
	im.batchBytes = maxBatchBytes
	if c, ok := w.(*client.Client); ok {
		limit := c.MaxBodyBytes()
		if limit <= 0 {
			limit = server.DefaultMaxBodyBytes
		}
		im.batchBytes = int(limit) - wire.AppendRequestOverhead
	}
	return nil
}

// eventBytes is what e, parsed from line, adds to a batch: through a
// server, its JSON in the request and a comma; embedded, its line.
func (im *importer) eventBytes(e dcb.Event, line []byte) int {
	if _, ok := im.w.(*client.Client); !ok {
		return len(line)
	}
	im.scratch = wire.AppendEventBody(im.scratch[:0], e)
	return len(im.scratch) + 1
}

// append appends one batch of events.
func (im *importer) append(ctx context.Context, events []dcb.Event) error {
	last, err := im.w.Append(ctx, events, nil)
	if err != nil {
		return err
	}
	if im.events+im.held == 0 {
		im.first = last - uint64(len(events)) + 1
	}
	im.last = last
	if last <= im.head {
		im.held += len(events) // a retry: nothing written
		return nil
	}
	im.events += len(events)
	im.nbatch++
	return nil
}

// appendLost appends one batch of lost markers right after what the
// import appended so far (or the head it began at), as the store's own
// lost positions. Markers carry no ID: after events the store held
// already (an import run again), markers the store holds at those
// positions, of the same types and tags, are held too.
func (im *importer) appendLost(ctx context.Context, markers []dcb.Event) error {
	after := im.head
	if im.events+im.held > 0 {
		after = im.last
	}
	s := im.w.(*store.Store) // run refuses lost lines through a server
	last, err := s.AppendLost(ctx, after, markers, "possum append: the input's lost lines (\"lost\":true), positions the store it was read from had lost")
	if errors.Is(err, dcb.ErrAppendConditionFailed) && after < im.head && im.holdsMarkers(ctx, after, markers) {
		im.held += len(markers)
		im.last = after + uint64(len(markers))
		return nil
	}
	if err != nil && last == 0 {
		return err
	}
	if im.events+im.held == 0 {
		im.first = last - uint64(len(markers)) + 1
	}
	im.last = last
	im.events += len(markers)
	im.lost += len(markers)
	im.nbatch++
	return err // appended, but not recorded in LOST: said, and the import stops
}

// holdsMarkers reports whether the store holds markers at after+1.. with
// the types and tags of markers.
func (im *importer) holdsMarkers(ctx context.Context, after uint64, markers []dcb.Event) bool {
	i := 0
	for e, err := range im.w.Read(ctx, dcb.All(), store.ReadOptions{From: after + 1, Limit: len(markers)}) {
		if err != nil || !e.Lost || e.Type != markers[i].Type || !slices.Equal(e.Tags, markers[i].Normalized().Tags) {
			return false
		}
		i++
	}
	return i == len(markers)
}

// noWriterError is why the store could not be opened, as is.
type noWriterError struct{ err error }

func (e *noWriterError) Error() string   { return e.err.Error() }
func (e *noWriterError) Unwrap() []error { return []error{e.err, errNoWriter} }

func (im *importer) summary() string {
	elapsed := im.elapsed
	s := fmt.Sprintf("appended %s in %s, positions %d..%d, in %s", plural(im.events, "event"), plural(im.nbatch, "batch"),
		im.first, im.last, elapsed.Round(time.Millisecond))
	if elapsed >= time.Second {
		s += fmt.Sprintf(" (%.0f events/s)", float64(im.events)/elapsed.Seconds())
	}
	if im.lost > 0 {
		s += fmt.Sprintf("; %s of them lost (markers that keep the positions their source lost; recorded in %s)", plural(im.lost, "position"), storedir.LostFile)
	}
	if im.held > 0 {
		s += fmt.Sprintf("; %s the store held already (by their ids), not written again", plural(im.held, "event"))
	}
	return s
}

// plural is n things: "1 event", "2 events", "3 batches".
func plural(n int, thing string) string {
	switch {
	case n == 1:
		return "1 " + thing
	case strings.HasSuffix(thing, "ch"):
		return fmt.Sprintf("%d %ses", n, thing)
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// projectionWait is how long an import waits for the projector to write
// the event and index files of what it appended, before it closes the
// store: a small import leaves them complete, a large one leaves the rest
// to the next Open rather than keep the user waiting.
const projectionWait = 2 * time.Second

func (im *importer) waitProjected(ctx context.Context) {
	p, ok := im.w.(interface {
		WaitProjected(context.Context, uint64) error
	})
	if !ok || im.events == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, projectionWait)
	defer cancel()
	_ = p.WaitProjected(ctx, im.last) // projectionNote reports how far it got
}

// projectionNote says, after the store in dir was closed with head last,
// when its event and index files do not reach last yet: Close does not wait
// for them, the next Open of the store writes them.
func projectionNote(dir string, last uint64) string {
	cp, err := storedir.ReadCheckpoint(dir)
	if err != nil || cp.Position >= last {
		return ""
	}
	return fmt.Sprintf("event and index files are written up to position %d; the next process to open the store as its writer writes the rest (reads do not need them)", cp.Position)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// importBar is the progress of an import on a terminal: a bar of the bytes
// read when stdin is a file, a count of events otherwise. It shows once the
// first batch is appended, so small imports show none; nil (no terminal)
// does nothing.
type importBar struct {
	out  io.Writer
	size int64 // of stdin, 0: unknown
	bar  *progressbar.ProgressBar
}

func newImportBar(in *os.File, stderr io.Writer) *importBar {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	b := &importBar{out: stderr}
	if st, err := in.Stat(); err == nil && st.Mode().IsRegular() {
		b.size = st.Size()
	}
	return b
}

func (b *importBar) update(read int64, events int) {
	if b == nil {
		return
	}
	if b.bar == nil {
		max := b.size
		if max == 0 {
			max = -1 // a spinner
		}
		b.bar = progressbar.NewOptions64(max, progressbar.OptionSetWriter(b.out),
			progressbar.OptionSetDescription("appending"), progressbar.OptionShowBytes(b.size > 0),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
	}
	if b.size > 0 {
		_ = b.bar.Set64(read)
	} else {
		_ = b.bar.Set(events)
	}
	b.bar.Describe(fmt.Sprintf("appending (%d events)", events))
}

func (b *importBar) finish() {
	if b != nil && b.bar != nil {
		_ = b.bar.Finish()
	}
}
