package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
)

// cursorSaveEvery is how many events tail prints between two saves of its
// cursor (each save is a few fsyncs); it also saves when it stops.
const cursorSaveEvery = 1000

func tailCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	var qf queryFlags
	qf.register(fs)
	from := fs.Uint64("from", 0, fromHelp+" (with --cursor: or after the cursor, if that is later)")
	follow := fs.Bool("follow", false, "keep printing new events until interrupted (Ctrl-C exits 0)")
	cursor := fs.String("cursor", "", "resume after the cursor `NAME` (cursors/NAME in the store; a path with a / for a cursor file elsewhere, as for a read-only store) and save it as events print; one tail at a time per cursor")
	return func(args []string, stdout, stderr io.Writer) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		q, err := qf.query()
		if err != nil {
			return err
		}
		return runTail(ctx, args[0], q, *from, *follow, *cursor, stdout)
	}
}

// runTail prints the events of the store in dir matching q from position
// from (0: the first) as NDJSON (the keys of the event files), following it
// when follow until ctx ends. It reads through a store.Follower: it never
// locks or changes the store but for its cursor. A cursor is locked and
// known to be savable before anything is printed: a tail that could not
// save it, or that shares it with another tail, stops before it starts.
func runTail(ctx context.Context, dir string, q dcb.Query, from uint64, follow bool, cursorName string, stdout io.Writer) error {
	if !follow {
		if err := checkStore(dir); err != nil {
			return fmt.Errorf("%w (--follow waits for one)", err)
		}
	}
	from = max(from, 1)
	var cur *store.Cursor
	if cursorName != "" {
		var err error
		if cur, err = openCursor(dir, cursorName); err != nil {
			return err
		}
		defer cur.Close()
		from = max(from, cur.Position()+1)
	}
	f, err := store.Follow(dir, nil)
	if err != nil {
		return err
	}
	defer f.Close()
	p := &ndjsonPrinter{w: bufio.NewWriter(stdout)}
	last, unsaved := uint64(0), 0
	save := func() error {
		if cur == nil || unsaved == 0 {
			return nil
		}
		unsaved = 0
		return cur.Save(last)
	}
	var events iter.Seq2[dcb.SequencedEvent, error]
	if follow {
		events = f.Subscribe(ctx, q, from-1)
	} else {
		events = f.Read(ctx, q, store.ReadOptions{From: from})
	}
	for e, err := range events {
		if err != nil {
			if follow && errors.Is(err, ctx.Err()) {
				break // interrupted: a normal end
			}
			return errors.Join(err, p.flush(), save())
		}
		if err := p.print(e); err != nil {
			return err
		}
		if follow {
			// Each line as it comes, so that tail can be piped.
			if err := p.flush(); err != nil {
				return err
			}
		}
		last = e.Position
		if unsaved++; unsaved >= cursorSaveEvery {
			if err := errors.Join(p.flush(), save()); err != nil {
				return err
			}
		}
	}
	return errors.Join(p.flush(), save())
}

// openCursor opens and locks tail's cursor: the cursor called name in the
// store in dir, or, when name holds a path separator, the cursor file at
// that path.
func openCursor(dir, name string) (*store.Cursor, error) {
	open := func() (*store.Cursor, error) { return store.NamedCursor(dir, name) }
	if strings.ContainsRune(name, '/') || strings.ContainsRune(name, filepath.Separator) {
		open = func() (*store.Cursor, error) { return store.OpenCursor(name) }
	}
	cur, err := open()
	if err == nil {
		err = cur.Lock()
	}
	if err != nil {
		return nil, fmt.Errorf("%w; nothing was printed", err)
	}
	return cur, nil
}
