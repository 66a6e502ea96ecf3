package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/possumstore/possum/cluster"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
)

// A store beyond one machine (package cluster): possum serve --nats runs
// one node of a store kept in a NATS JetStream stream, DIR its replica, and
// possum push seeds a new stream from a single-machine store.

// natsFlags are the flags that name a store's stream: serve's (with
// --nats, a node) and push's.
type natsFlags struct {
	url, stream, subject string
	replicas             int
	wait                 time.Duration
}

// define defines the flags on fs; what says what --nats does.
func (c *natsFlags) define(fs *flag.FlagSet, what string) {
	fs.StringVar(&c.url, "nats", "", what+" on the NATS servers at `URL[,URL...]` (nats://host:port; with --stream)")
	fs.StringVar(&c.stream, "stream", "", "the JetStream stream `NAME` that holds the store, created when missing (with --nats)")
	fs.StringVar(&c.subject, "subject", "", "the stream's subject prefix `P`: events are published on P.<type> (default: the stream's name; with --nats)")
	fs.DurationVar(&c.wait, "nats-wait", cluster.DefaultStartWait, "how long to wait for NATS servers that are still starting `D` (0: not at all; with --nats)")
	fs.IntVar(&c.replicas, "replicas", 0, "the stream's replica count `N`, 1 to 5: a new stream gets it, an existing one must have it (default: 1 for a new stream, any; use 3 on three NATS servers; with --nats)")
}

// check refuses flags that do not go together; required says --nats is.
func (c natsFlags) check(required bool) error {
	switch {
	case c.url == "" && required:
		return errors.New("--nats is required: the NATS servers, nats://host:port[,...]")
	case c.url == "" && (c.stream != "" || c.subject != "" || c.replicas != 0):
		return errors.New("--stream, --subject and --replicas name a store on NATS: give --nats too")
	case c.url == "":
		return nil
	case c.stream == "":
		return errors.New("--nats needs --stream, the JetStream stream that holds the store")
	case c.replicas < 0 || c.replicas > 5:
		return fmt.Errorf("--replicas %d: JetStream keeps 1 to 5 replicas", c.replicas)
	case c.wait < 0:
		return fmt.Errorf("--nats-wait %v is negative", c.wait)
	}
	return nil
}

// options are the cluster options of the flags; name names the NATS
// connection (the servers list their clients by name).
func (c natsFlags) options(name string) *cluster.Options {
	wait := c.wait
	if wait == 0 {
		wait = -1 // cluster.Options: no waiting
	}
	return &cluster.Options{
		URL: c.url, Stream: c.stream, Subject: c.subject, Replicas: c.replicas,
		NATS: []nats.Option{nats.Name(name)}, StartWait: wait,
	}
}

// natsOpenTimeout bounds connecting to NATS and looking at the stream,
// after --nats-wait for servers that are starting.
const natsOpenTimeout = 30 * time.Second

// served is what possum serve serves: a store, or a node of a store on
// NATS (cluster.Node), whose replica's head Head is.
type served interface {
	store.EventStore
	Head() uint64
	Close() error
}

// openServed opens what serve serves in dir (with --nats, a node of the
// store on the stream c names, dir its replica, caught up with the stream
// before it returns; else the store) and listens on the unix socket in
// dir. It says what it serves, for serve's first line.
func openServed(ctx context.Context, dir string, c natsFlags) (served, net.Listener, string, error) {
	var st served
	var sock net.Listener
	var err error
	what := dir
	if c.url == "" {
		var s *store.Store
		if s, err = store.Open(dir, nil); err == nil {
			st = s
			sock, err = server.ListenSocket(s)
		}
	} else {
		var n *cluster.Node
		if n, err = openNode(ctx, dir, c); err == nil {
			st = n
			sock, err = n.ListenSocket()
		}
		what = fmt.Sprintf("%s as a node of stream %s at %s", dir, c.stream, c.url)
	}
	if errors.Is(err, store.ErrLocked) {
		err = fmt.Errorf("%w: another process holds its lock (%s): is the store served already? its socket: %s",
			err, filepath.Join(dir, storedir.LockFile), storedir.SocketPath(dir))
	}
	if err != nil {
		if st != nil {
			st.Close()
		}
		return nil, nil, "", err
	}
	return st, sock, what, nil
}

// openNode opens the node of c in dir and waits until its replica holds
// what the stream held then, so that it serves reads of the whole store.
func openNode(ctx context.Context, dir string, c natsFlags) (*cluster.Node, error) {
	octx, cancel := context.WithTimeout(ctx, c.wait+natsOpenTimeout)
	defer cancel()
	n, err := cluster.Open(octx, dir, c.options("possum serve "+dir))
	if err != nil {
		return nil, err
	}
	if _, err := n.CatchUp(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}
