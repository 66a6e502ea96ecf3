package cluster

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
)

// Options configure a node. Stream and one of URL or Conn are required.
type Options struct {
	// URL is the NATS server to connect to, or several separated by
	// commas (the node fails over between them). Ignored when Conn is set.
	URL string
	// NATS are options for the connection dialled to URL: credentials,
	// TLS, a name. The node adds its own reconnect settings first, so
	// these override them.
	NATS []nats.Option
	// Conn, when set, is the connection the node uses instead of dialling
	// URL. The node does not close it. It should reconnect for ever
	// (nats.MaxReconnects(-1)) and buffer nothing while disconnected
	// (nats.ReconnectBufSize(-1)), as the node's own connection does.
	Conn *nats.Conn
	// Stream names the JetStream stream that holds the store: one stream
	// per store, shared by every node of the store. Required.
	Stream string
	// Subject is the stream's subject prefix: events are published on
	// Subject.<type>. "": the stream's name.
	Subject string
	// Replicas is the stream's replica count: the count possum creates it
	// with (0: 1), and, when not 0, the count an existing stream must
	// have. Use 3 on a cluster of three NATS servers.
	Replicas int
	// Store configures the local replica (see store.Options). Its
	// MaxProjectionLag defaults to store.NoProjectionLagBound here: the
	// replica applies at the stream's pace and its files follow. Its
	// NoSync is set from SyncReplica.
	Store *store.Options
	// SyncReplica makes the replica fsync what it applies, as a store does
	// its appends. Off by default: an append's durability is the stream's
	// (a quorum of JetStream servers), and a replica that loses its tail to
	// a power loss applies it again from the stream when it opens. A
	// process crash loses nothing either way.
	SyncReplica bool
	// Timeout bounds one request to JetStream (a publish, a stream info);
	// 0: 5 seconds. A publish that times out is resolved, never repeated
	// blindly (see Node.Append).
	Timeout time.Duration
	// StartWait is how long Open waits for NATS servers that are still
	// starting: none answering yet, or their JetStream not ready (no meta
	// leader elected, fewer servers than the stream's replicas), as when
	// the servers and the nodes start together. 0: DefaultStartWait;
	// negative: Open fails at once. The ctx given to Open bounds it too.
	StartWait time.Duration
	// Logger receives what the node repairs and retries; nil:
	// slog.Default().
	Logger *slog.Logger
}

// DefaultTimeout is Options.Timeout when it is 0.
const DefaultTimeout = 5 * time.Second

// DefaultStartWait is Options.StartWait when it is 0.
const DefaultStartWait = 30 * time.Second

// validate checks o before anything is dialled or written, and fills in
// defaults.
func (o *Options) validate() error {
	if o.Stream == "" {
		return errors.New("cluster: Options.Stream is required")
	}
	if len(o.Stream) > 255 || strings.ContainsAny(o.Stream, " \t\r\n.*>/\\") || !printable(o.Stream) {
		return fmt.Errorf("cluster: stream name %q: at most 255 printable characters, none of space . * > / \\", o.Stream)
	}
	if o.Subject == "" {
		o.Subject = o.Stream
	}
	for _, tok := range strings.Split(o.Subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") || !printable(tok) {
			return fmt.Errorf("cluster: subject prefix %q: tokens must be non-empty, printable, without space, * or >", o.Subject)
		}
	}
	if o.Replicas < 0 || o.Replicas > 5 {
		return fmt.Errorf("cluster: Options.Replicas %d: JetStream keeps 1 to 5 replicas", o.Replicas)
	}
	if o.Conn == nil && o.URL == "" {
		return errors.New("cluster: Options.URL (or Conn) is required")
	}
	if o.Timeout < 0 {
		return fmt.Errorf("cluster: Options.Timeout %v is negative", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.StartWait == 0 {
		o.StartWait = DefaultStartWait
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// Node is one node of a possum store replicated by a JetStream stream: it
// appends to the stream and keeps a local possum store, its replica, which
// it applies from the stream in order. Reads, Subscribe and Head are the
// replica's; an append goes to the stream and is answered once the replica
// holds it. Its methods are safe for concurrent use.
type Node struct {
	opts    Options
	log     *slog.Logger
	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	stream  jetstream.Stream
	prefix  string
	// maxPayload is the largest message the stream takes: the server's
	// max_payload, or the stream's max_msg_size when smaller.
	maxPayload int
	rep        *replica

	// ctx ends when the node closes: it cancels every request to
	// JetStream the node is making.
	ctx    context.Context
	cancel context.CancelFunc

	reqs       chan []*appendRequest // an Append's, or an AppendMany's in order
	writerDone chan struct{}
	// lastAcked, pending and pendingIDs are owned by the writer
	// goroutine: the last position of its last committed batch, the
	// events it committed that the replica has not applied yet, in
	// position order, and those of them with an ID, by ID.
	lastAcked  uint64
	pending    []pendingEvent
	pendingIDs map[string]pendingEvent

	// spans are the batches handed to the apply loop (see apply.go).
	spans chan span

	// The applier's progress, guarded by mu: advanced is closed and
	// replaced whenever the replica's head moves; waiters are answered
	// once it reaches their position; applyErr, once set, has stopped the
	// applier for good.
	mu          sync.Mutex
	advanced    chan struct{}
	waiters     []waiter
	applyErr    error
	applierDone chan struct{}

	stats counters

	closeOnce sync.Once
	closed    atomic.Bool
	closeErr  error
}

var _ store.EventStore = (*Node)(nil)

// Open opens the node whose replica is the store in dir, on the stream
// opts name: it connects to NATS, creates the stream or checks the one
// that exists (its configuration and that possum wrote it), opens the
// local store (creating dir when needed), checks that it is a replica of
// this stream, and starts applying the stream from the replica's head + 1
// (from position 1 on an empty directory) in the background: CatchUp
// waits for it to catch up. ctx bounds Open, not the node.
//
// Open writes nothing, neither to the stream nor to dir, when NATS cannot
// be reached or the stream is refused.
func Open(ctx context.Context, dir string, opts *Options) (*Node, error) {
	if opts == nil {
		return nil, errors.New("cluster: Options are required (Stream, URL)")
	}
	o := *opts
	if err := o.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		opts:        o,
		log:         o.Logger,
		prefix:      o.Subject,
		reqs:        make(chan []*appendRequest),
		writerDone:  make(chan struct{}),
		advanced:    make(chan struct{}),
		spans:       make(chan span, applyQueue),
		applierDone: make(chan struct{}),
	}
	if err := n.connect(ctx); err != nil {
		return nil, err
	}
	fail := func(err error) (*Node, error) {
		if n.rep != nil {
			n.rep.st.Close()
		}
		if n.ownConn {
			n.nc.Close()
		}
		return nil, err
	}
	var st jetstream.Stream
	err := whileStarting(ctx, o, func(ctx context.Context) (err error) {
		st, err = openStream(ctx, n.js, o.Stream, n.prefix, o.Replicas)
		return err
	})
	if err != nil {
		return fail(err)
	}
	n.stream = st
	n.maxPayload = int(n.nc.MaxPayload())
	if m := int(st.CachedInfo().Config.MaxMsgSize); m > 0 && m < n.maxPayload {
		n.maxPayload = m
	}
	if n.rep, err = openReplica(dir, o.Store, !o.SyncReplica); err != nil {
		return fail(err)
	}
	if err := n.checkReplica(ctx); err != nil {
		return fail(err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.writer()
	go n.applier()
	return n, nil
}

// connect dials NATS, unless the caller gave a connection.
func (n *Node) connect(ctx context.Context) error {
	if n.opts.Conn != nil {
		n.nc = n.opts.Conn
	} else {
		// Reconnect for ever, and buffer nothing while disconnected: a
		// publish during an outage fails at once instead of reaching the
		// stream later, unasked.
		opts := append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), nats.ReconnectWait(250 * time.Millisecond)}, n.opts.NATS...)
		if d, ok := ctx.Deadline(); ok {
			opts = append(opts, nats.Timeout(time.Until(d)))
		}
		var nc *nats.Conn
		err := whileStarting(ctx, n.opts, func(context.Context) (err error) {
			nc, err = nats.Connect(n.opts.URL, opts...)
			return err
		})
		if err != nil {
			return fmt.Errorf("cluster: connecting to NATS at %s: %w", n.opts.URL, err)
		}
		n.nc, n.ownConn = nc, true
	}
	js, err := jetstream.New(n.nc, jetstream.WithDefaultTimeout(n.opts.Timeout))
	if err != nil {
		if n.ownConn {
			n.nc.Close()
		}
		return fmt.Errorf("cluster: %w", err)
	}
	n.js = js
	return nil
}

// checkReplica refuses a local store that is ahead of the stream or holds
// other events than the stream at its head.
func (n *Node) checkReplica(ctx context.Context) error {
	head := n.rep.st.Head()
	if head == 0 {
		return nil
	}
	last := n.stream.CachedInfo().State.LastSeq
	if head > last {
		return fmt.Errorf("cluster: the store in %s holds %d events, the stream %q only %d: it is not a replica of this stream (a store to seed a new stream with is pushed, not opened as a node)",
			n.rep.st.Dir(), head, n.opts.Stream, last)
	}
	m, err := n.stream.GetMsg(ctx, head)
	if err != nil {
		return fmt.Errorf("cluster: stream %q: reading message %d: %w", n.opts.Stream, head, err)
	}
	e, _, err := decodeEvent(n.prefix, m.Subject, m.Header, m.Data)
	if err != nil {
		return fmt.Errorf("cluster: stream %q is not a possum store: message %d: %w", n.opts.Stream, head, err)
	}
	return n.rep.checkAgainst(ctx, head, e)
}

// Dir returns the directory of the node's replica.
func (n *Node) Dir() string { return n.rep.st.Dir() }

// ListenSocket listens on the unix socket in the node's directory, as
// server.ListenSocket does on a store's: serve it with server.New(n, nil),
// and client.Dial(n.Dir()), possum append and the other possum commands
// that go through a store's socket reach the node there.
func (n *Node) ListenSocket() (net.Listener, error) { return server.ListenSocket(n.rep.st) }

// Head returns the replica's head: the last position this node has
// applied. Appends acknowledged by this node are at or below it; other
// nodes' may be beyond it until the replica applies them (CatchUp waits
// for that).
func (n *Node) Head() uint64 { return n.rep.st.Head() }

// HeadContext returns the replica's head, as Head does (store.Events): a
// Read on this node after it sees every event up to it. It does no I/O and
// fails only once the node is closed (store.ErrClosed). CatchUp is the
// head of the whole cluster.
func (n *Node) HeadContext(ctx context.Context) (uint64, error) {
	if n.closed.Load() {
		return 0, fmt.Errorf("cluster: head: %w", store.ErrClosed)
	}
	return n.rep.st.Head(), nil
}

// CatchUp asks the stream for its last position and waits until the
// replica has applied it, so that a Read on this node after it returns
// sees every append any node had acknowledged when it was called. It
// returns that head. It fails when ctx ends first, when JetStream does not
// answer, when the replica cannot apply the stream, or once the node is
// closed.
func (n *Node) CatchUp(ctx context.Context) (uint64, error) {
	if n.closed.Load() {
		return 0, fmt.Errorf("cluster: catch up: %w", store.ErrClosed)
	}
	last, err := n.streamLast(ctx)
	if err != nil {
		return 0, fmt.Errorf("cluster: catch up: %w", err)
	}
	if err := n.waitApplied(ctx, last); err != nil {
		return 0, fmt.Errorf("cluster: catch up: %w", err)
	}
	return n.rep.st.Head(), nil
}

// Read reads the replica: the events this node has applied (see
// store.Store.Read).
func (n *Node) Read(ctx context.Context, q dcb.Query, o store.ReadOptions) iter.Seq2[dcb.SequencedEvent, error] {
	return n.rep.st.Read(ctx, q, o)
}

// Subscribe follows the replica: the events this node applies, as they
// are applied (see store.Store.Subscribe).
func (n *Node) Subscribe(ctx context.Context, q dcb.Query, after uint64) iter.Seq2[dcb.SequencedEvent, error] {
	return n.rep.st.Subscribe(ctx, q, after)
}

// Stats returns the replica's store statistics (see store.Store.Stats).
func (n *Node) Stats() store.Stats { return n.rep.st.Stats() }

// Stats describe what a node did since it opened.
type Stats struct {
	Stream  string
	Applied uint64 // the replica's head
	// Batches and Events: atomic batches this node committed to the
	// stream, and the events they carried.
	Batches, Events uint64
	// Conflicts: batches JetStream refused because another node appended
	// first (the node caught up and checked its appends again).
	Conflicts uint64
	// Unanswered: publishes whose answer was lost (a timeout, a dropped
	// connection), resolved by reading the stream; Republished: those of
	// them published again under the same expected head.
	Unanswered, Republished uint64
	// AppliedEvents and Applies: events the applier appended to the
	// replica, and the appends it took.
	AppliedEvents, Applies uint64
	ApplyErr               error // why the applier stopped, nil while it runs
}

type counters struct {
	batches, events, conflicts, unanswered, republished, appliedEvents, applies atomic.Uint64
}

// ClusterStats returns what the node did since it opened.
func (n *Node) ClusterStats() Stats {
	n.mu.Lock()
	err := n.applyErr
	n.mu.Unlock()
	return Stats{
		Stream:        n.opts.Stream,
		Applied:       n.rep.st.Head(),
		Batches:       n.stats.batches.Load(),
		Events:        n.stats.events.Load(),
		Conflicts:     n.stats.conflicts.Load(),
		Unanswered:    n.stats.unanswered.Load(),
		Republished:   n.stats.republished.Load(),
		AppliedEvents: n.stats.appliedEvents.Load(),
		Applies:       n.stats.applies.Load(),
		ApplyErr:      err,
	}
}

// Close stops the node: appends not yet taken up fail with
// store.ErrClosed, an append being published is abandoned (its callers
// are told it may have been committed), appends committed but not yet
// applied by the replica are answered with their positions, the applier
// stops, and the replica and the connection (when the node dialled it)
// are closed. The stream is untouched. Close is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		n.cancel()
		<-n.writerDone
		<-n.applierDone
		n.answerWaiters()
		n.closeErr = n.rep.st.Close()
		if n.ownConn {
			n.nc.Close()
		}
	})
	return n.closeErr
}

// streamLast asks the stream for its last sequence.
func (n *Node) streamLast(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	info, err := n.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %q info: %w", n.opts.Stream, err)
	}
	return info.State.LastSeq, nil
}
