package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/possumstore/possum/cluster"
)

const pushHelp = `push copies every event of the store in DIR into the JetStream stream NAME,
each at its own position, with its timestamp and id, so that the store goes
on beyond one machine: possum serve DIR --nats URL --stream NAME then runs
DIR as a node, already caught up, and nodes on other machines catch up from
the stream. The stream must be new or empty, or hold this store's first
events (a push cut short, or one made before the store grew): push then adds
the rest. Anything else, or an event no NATS message can carry (over the
servers' max_payload), is refused before anything is published. push reads
the store without locking it; stop its writer first so that nothing it
appends after the push is left behind (push again after it stopped adds
what it appended meanwhile). Nothing else may append to the stream while
push runs.`

func pushCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	var c natsFlags
	c.define(fs, "push to a JetStream stream")
	asJSON := fs.Bool("json", false, "print what was pushed as one JSON document")
	return func(args []string, stdout, stderr io.Writer) error {
		if err := c.check(true); err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runPush(ctx, args[0], c, *asJSON, stdout)
	}
}

// pushReport is what possum push --json prints.
type pushReport struct {
	Dir     string  `json:"dir"`
	Stream  string  `json:"stream"`
	Had     uint64  `json:"had"`
	Pushed  uint64  `json:"pushed"`
	Head    uint64  `json:"head"`
	Batches int     `json:"batches"`
	Seconds float64 `json:"seconds"`
}

func runPush(ctx context.Context, dir string, c natsFlags, asJSON bool, stdout io.Writer) error {
	f, err := followStore(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	rep, err := cluster.Push(ctx, f, c.options("possum push "+dir))
	if err != nil {
		return err
	}
	r := pushReport{Dir: dir, Stream: rep.Stream, Had: rep.Had, Pushed: rep.Pushed, Head: rep.Head,
		Batches: rep.Batches, Seconds: time.Since(start).Seconds()}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	took := time.Duration(r.Seconds * float64(time.Second)).Round(time.Millisecond)
	if r.Pushed == 0 {
		fmt.Fprintf(stdout, "stream %s holds the %d events of %s already: nothing pushed\n", r.Stream, r.Head, dir)
		return nil
	}
	fmt.Fprintf(stdout, "pushed %s into stream %s: positions %d..%d of %d (%s) in %s\n",
		dir, r.Stream, r.Had+1, r.Head, r.Head, plural(r.Batches, "batch"), took)
	return nil
}
