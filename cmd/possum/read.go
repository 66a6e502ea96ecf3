package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

func readCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	var qf queryFlags
	qf.register(fs)
	from := fs.Uint64("from", 0, fromHelp+" (with --backwards: the last)")
	limit := fs.Int("limit", 0, "print at most `N` events (0: every one)")
	backwards := fs.Bool("backwards", false, "newest first")
	table := fs.Bool("table", false, "print a table, not NDJSON (the default when stdout is a terminal; --table=false: NDJSON there too)")
	return func(args []string, stdout, stderr io.Writer) error {
		q, err := qf.query()
		if err != nil {
			return err
		}
		if *limit < 0 {
			return fmt.Errorf("--limit %d: a limit is 0 (none) or more", *limit)
		}
		asTable := *table || (!given(fs, "table") && isTerminal(stdout))
		o := store.ReadOptions{From: *from, Limit: *limit, Backwards: *backwards}
		return runRead(context.Background(), args[0], q, o, newPrinter(stdout, asTable))
	}
}

// fromHelp is what --from means to read and tail alike.
const fromHelp = "start at `POSITION`, inclusive; 0: the first"

// runRead prints the events of the store in dir that match q, read with o,
// through a store.Follower: whether or not another process writes the
// store, it sees what that writer acknowledged, and changes nothing.
func runRead(ctx context.Context, dir string, q dcb.Query, o store.ReadOptions, p printer) error {
	f, err := followStore(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	for e, err := range f.Read(ctx, q, o) {
		if err != nil {
			return errors.Join(err, p.flush())
		}
		if err := p.print(e); err != nil {
			return err
		}
	}
	return p.flush()
}

// given reports whether the flag name was set on the command line.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// printer writes events out, buffered until flush.
type printer interface {
	print(e dcb.SequencedEvent) error
	flush() error
}

func newPrinter(w io.Writer, table bool) printer {
	if table {
		return &tablePrinter{out: w, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	}
	return &ndjsonPrinter{w: bufio.NewWriter(w)}
}

// ndjsonPrinter prints each event as one line of JSON, the encoding of its
// event file in its one-line mode (storedir.AppendEvent): byte for byte
// the event file, but for data written over several lines, which is
// compacted onto the line and kept, byte for byte, as rawData.
type ndjsonPrinter struct {
	w   *bufio.Writer
	buf []byte
}

func (p *ndjsonPrinter) print(e dcb.SequencedEvent) error {
	p.buf = append(storedir.AppendEvent(p.buf[:0], e, true), '\n')
	_, err := p.w.Write(p.buf)
	return err
}

func (p *ndjsonPrinter) flush() error { return p.w.Flush() }

// tableRowsPerFlush bounds how many rows the table holds back to align
// them: a long read streams in blocks of this many rows, each aligned on
// its own under a header of its own.
const tableRowsPerFlush = 200

// tablePrinter prints events as a table for a person: one row each,
// position, time (UTC), type, tags, data and metadata, long values cut.
type tablePrinter struct {
	out  io.Writer
	tw   *tabwriter.Writer
	rows int
}

const tableHeader = "POSITION\tTIME (UTC)\tTYPE\tTAGS\tDATA\tMETADATA\n"

func (p *tablePrinter) print(e dcb.SequencedEvent) error {
	if p.rows%tableRowsPerFlush == 0 {
		if err := p.tw.Flush(); err != nil {
			return err
		}
		fmt.Fprint(p.tw, tableHeader)
	}
	p.rows++
	tags := make([]string, len(e.Tags))
	for i, t := range e.Tags {
		tags[i] = cell(t, 40)
	}
	meta := make([]string, 0, len(e.Metadata))
	for k, v := range e.Metadata {
		meta = append(meta, cell(k, 20)+"="+cell(v, 30))
	}
	slices.Sort(meta)
	if e.Lost {
		// No time nor data to show, and none made up.
		typ := "(unknown)"
		if e.Type != "" {
			typ = cell(e.Type, 40)
		}
		_, err := fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t\n", e.Position, "LOST", typ, strings.Join(tags, " "), "(lost: its event is gone)")
		return err
	}
	_, err := fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Position, e.Timestamp.UTC().Format("2006-01-02 15:04:05.000"),
		cell(e.Type, 40), strings.Join(tags, " "), dataCell(e.Data), strings.Join(meta, " "))
	return err
}

func (p *tablePrinter) flush() error {
	if p.rows == 0 {
		_, err := fmt.Fprintln(p.out, "no events match")
		return err
	}
	return p.tw.Flush()
}

// dataCell is an event's data in a table cell: compact JSON, cut.
func dataCell(data []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, data) != nil {
		return cell(string(data), 60)
	}
	return cut(b.String(), 60)
}

// cell makes s fit a table cell: quoted if it holds spaces or characters
// that do not print, cut to at most max runes with "…".
func cell(s string, max int) string {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		s = strconv.Quote(s)
	}
	return cut(s, max)
}

// cut shortens s to at most max runes, the last one "…" if it was longer.
func cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}
