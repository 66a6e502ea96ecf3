package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"os"
)

const backupHelp = `The backup is a store of its own in DEST: a consistent copy of every event
the store's writer had acknowledged when the backup began, taken while it
goes on appending (backup never locks the store, nor waits for it). DEST is
new, empty, or an earlier backup of the same store: then only what is new is
copied. Anything else in DEST is refused, nothing changed. possum verify
DEST checks the copy; possum read DEST, or opening it, uses it (its event and
index files are written when it is first opened).`

func backupCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	asJSON := fs.Bool("json", false, "print what was copied as one JSON document")
	return func(args []string, stdout, stderr io.Writer) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runBackup(ctx, args[0], args[1], *asJSON, stdout)
	}
}

// backupReport is what possum backup --json prints.
type backupReport struct {
	Dir      string  `json:"dir"`
	Dest     string  `json:"dest"`
	Head     uint64  `json:"head"`
	Records  int     `json:"records"`
	Segments int     `json:"segments"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
}

func runBackup(ctx context.Context, dir, dest string, asJSON bool, stdout io.Writer) error {
	f, err := followStore(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	rep, err := f.Backup(ctx, dest)
	if err != nil {
		return err
	}
	r := backupReport{Dir: dir, Dest: dest, Head: rep.Head, Records: rep.Records, Segments: rep.Segments,
		Bytes: rep.Bytes, Seconds: time.Since(start).Seconds()}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(stdout, "backed up %s into %s: positions 1..%d (%s in %s), %s copied in %s\n",
		dir, dest, r.Head, plural(r.Records, "record"), plural(r.Segments, "segment"),
		bytesText(r.Bytes), time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond))
	return nil
}
