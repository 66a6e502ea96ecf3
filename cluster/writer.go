package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// The write path. One goroutine, the writer, owns appending to the stream:
// it takes every append waiting, checks their conditions in order against
// what this node knows of the stream (the replica, the batches it
// committed that the replica has not applied yet, and the appends accepted
// before in the same round), and publishes the accepted ones as one atomic
// batch whose first message expects the stream's last position to be the
// head H the conditions were checked at. JetStream commits all of it or
// none: if another node appended after H, the whole batch is refused, and
// the writer waits for the replica to apply what the other node wrote and
// checks again. A committed batch's callers are answered once the replica
// has applied it, so that a Read on this node then sees it.
//
// A publish whose answer is lost (a timeout, a dropped connection) is
// resolved by reading the stream, never by publishing again blindly: if
// the stream grew past H, the batch at H+1 is this one (it committed) or
// another (this one never can: it expects H); if the stream is still at H,
// the same batch is published again under the same expectation (and the
// same Nats-Msg-Id), so that at most one of the two copies can commit.

type appendRequest struct {
	ctx context.Context
	// events are normalized, as the replica will hold them, except that
	// a zero Timestamp stays zero: the writer stamps those events, and
	// their messages, when it publishes them.
	events []dcb.Event
	msgs   []*nats.Msg // their messages, without batch headers
	ids    bool        // some event carries an ID
	cond   *dcb.AppendCondition
	size   int // store.StoredSize of events
	done   chan appendResult

	// Owned by the writer goroutine.
	takenUp bool
	last    uint64 // accepted: the position of its last event
	// held: decided on an event of its own round, so that the decision
	// stands only if the round's batch commits: the answer, given once
	// the replica applied position cause.
	cause    uint64
	ifCommit appendResult
}

type appendResult struct {
	last uint64
	err  error
}

// pendingEvent is an event the writer committed, at its position.
type pendingEvent struct {
	pos   uint64
	event dcb.Event
}

// waiter is an answer held until the replica has applied position pos:
// an accepted append's last event, or the event a rejected one failed on.
type waiter struct {
	pos uint64
	req *appendRequest
	res appendResult
}

// Append appends events as one atomic unit, on the condition cond (nil:
// none), and returns the position of the last one once JetStream has
// committed them and this node's replica has applied them. It fails as
// store.Store.Append does (dcb.ErrAppendConditionFailed,
// dcb.ErrInvalidEvent, dcb.ErrInvalidQuery, dcb.ErrIDConflict,
// store.ErrClosed), and, when it does, nothing was written, with two
// exceptions that say so in their message: ctx ended after the append was
// handed to the stream (its outcome is not known yet: the node goes on
// resolving it), or the replica stopped applying the stream after the
// append was committed.
//
// Events keep the ID and the Timestamp their caller gave; those without a
// timestamp get the time the node publishes them, the same for every event
// of the append (see dcb.Event). An append whose events all carry IDs the
// stream holds, as the same events at consecutive positions, is a retry
// (dcb.Retried, checked before the condition): it is answered with their
// positions and writes nothing, on whichever node it is sent again, also
// while the first copy is still on its way. So an append whose answer was
// lost (a node that died, a timeout) is safely sent again, to any node,
// when its events carry IDs.
//
// One append travels in one JetStream batch: at most MaxAppendEvents
// events, each within the server's message size (max_payload, 1 MiB by
// default) with at most 64 KiB of tags, metadata and id, and the whole
// within the store's 64 MiB record. A larger append is refused with
// dcb.ErrInvalidEvent naming the limit.
func (n *Node) Append(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (uint64, error) {
	req, err := n.newAppendRequest(ctx, events, cond)
	if err != nil {
		return 0, err
	}
	if err := n.submit(ctx, []*appendRequest{req}); err != nil {
		return 0, err
	}
	res := n.wait(ctx, req)
	return res.last, res.err
}

// AppendMany makes the independent appends items, each as Append would,
// handing them to the writer together and in order (see
// store.Store.AppendMany): they are checked in that order and usually
// travel in one batch.
func (n *Node) AppendMany(ctx context.Context, items []store.AppendItem) []store.AppendOutcome {
	out := make([]store.AppendOutcome, len(items))
	reqs := make([]*appendRequest, 0, len(items))
	at := make([]int, 0, len(items))
	for i, it := range items {
		req, err := n.newAppendRequest(ctx, it.Events, it.Condition)
		if err != nil {
			out[i].Err = err
			continue
		}
		reqs = append(reqs, req)
		at = append(at, i)
	}
	if len(reqs) == 0 {
		return out
	}
	if err := n.submit(ctx, reqs); err != nil {
		for _, i := range at {
			out[i].Err = err
		}
		return out
	}
	for j, req := range reqs {
		res := n.wait(ctx, req)
		out[at[j]] = store.AppendOutcome{Last: res.last, Err: res.err}
	}
	return out
}

// newAppendRequest validates an append, normalizes its events and encodes
// their messages, refusing what one batch cannot carry.
func (n *Node) newAppendRequest(ctx context.Context, events []dcb.Event, cond *dcb.AppendCondition) (*appendRequest, error) {
	if err := dcb.ValidateBatch(events); err != nil {
		return nil, fmt.Errorf("cluster: append: %w", err)
	}
	if len(events) > MaxAppendEvents {
		return nil, fmt.Errorf("cluster: append: %w: %d events exceed the %d-event limit of one atomic batch", dcb.ErrInvalidEvent, len(events), MaxAppendEvents)
	}
	if cond != nil {
		if err := cond.FailIfEventsMatch.Validate(); err != nil {
			return nil, fmt.Errorf("cluster: append condition: %w", err)
		}
	}
	req := &appendRequest{
		ctx:    ctx,
		events: make([]dcb.Event, len(events)),
		msgs:   make([]*nats.Msg, len(events)),
		cond:   cond,
		done:   make(chan appendResult, 1),
	}
	for i, e := range events {
		e = e.Normalized()
		m, err := encodeEvent(n.prefix, streamEvent{Event: e})
		if err != nil {
			return nil, fmt.Errorf("cluster: append: event %d: %w", i, err)
		}
		if err := checkLimits(m, e.Type, n.maxPayload); err != nil {
			return nil, fmt.Errorf("cluster: append: event %d: %w", i, err)
		}
		req.events[i], req.msgs[i] = e, m
		req.ids = req.ids || e.ID != ""
	}
	if req.size = store.StoredSize(req.events); req.size > store.MaxAppendSize {
		return nil, fmt.Errorf("cluster: append: %w: batch of %d bytes exceeds the %d-byte record limit", dcb.ErrInvalidEvent, req.size, store.MaxAppendSize)
	}
	return req, nil
}

// submit hands reqs to the writer, which takes them in order.
func (n *Node) submit(ctx context.Context, reqs []*appendRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case n.reqs <- reqs:
		return nil
	case <-n.ctx.Done():
		return fmt.Errorf("cluster: append: %w", store.ErrClosed)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait waits for req's answer, or for ctx to end.
func (n *Node) wait(ctx context.Context, req *appendRequest) appendResult {
	select {
	case res := <-req.done:
		return res
	case <-ctx.Done():
		// The writer may have published it already; say so rather than
		// promise nothing was written.
		return appendResult{err: fmt.Errorf("cluster: append: %w; the append was handed to the stream and its outcome is not known yet (read the store to learn it, or send it again with the same event ids)", ctx.Err())}
	}
}

// writer is the goroutine that appends to the stream.
func (n *Node) writer() {
	defer close(n.writerDone)
	var queue []*appendRequest
	for {
		if len(queue) == 0 {
			select {
			case reqs := <-n.reqs:
				queue = append(queue, reqs...)
			case <-n.ctx.Done():
				return
			}
		}
		drain(n.reqs, func(reqs []*appendRequest) { queue = append(queue, reqs...) })
		if n.ctx.Err() != nil {
			// Nothing queued was published (a retried append's batch was
			// refused): each fails as never taken up.
			for _, r := range queue {
				r.done <- appendResult{err: fmt.Errorf("cluster: append: %w", store.ErrClosed)}
			}
			return
		}
		k := batchCut(queue)
		retry := n.commit(queue[:k])
		queue = append(retry, queue[k:]...)
	}
}

// drain hands take every value waiting on ch, without waiting for more.
func drain[T any](ch <-chan T, take func(T)) {
	for {
		select {
		case v := <-ch:
			take(v)
		default:
			return
		}
	}
}

// batchCut returns how many appends at the head of queue one batch takes:
// at least one, and as many as fit MaxAppendEvents and the store's record
// limit, in order.
func batchCut(queue []*appendRequest) int {
	events, size := 0, 0
	for i, r := range queue {
		if i > 0 && (events+len(r.events) > MaxAppendEvents || size+r.size > store.MaxAppendSize) {
			return i
		}
		events += len(r.events)
		size += r.size
	}
	return len(queue)
}

// verdict is what a round decided for one append.
type verdict uint8

const (
	decided  verdict = iota // answered, or to be answered by a waiter
	accepted                // in the batch
	held                    // decided on an event of the batch: stands only if it commits
)

// round is what one commit accepted so far: the events at h+1 onwards,
// and the index among them of each event with an ID.
type round struct {
	events []pendingEvent
	ids    map[string]int
}

func (rnd *round) add(pos uint64, e dcb.Event) {
	if e.ID != "" {
		if rnd.ids == nil {
			rnd.ids = map[string]int{}
		}
		rnd.ids[e.ID] = len(rnd.events)
	}
	rnd.events = append(rnd.events, pendingEvent{pos, e})
}

// commit checks group's appends in order and publishes the accepted ones
// as one batch. It returns the appends to take up again, in order: those
// of a batch JetStream refused because the stream moved.
func (n *Node) commit(group []*appendRequest) (retry []*appendRequest) {
	applied := n.rep.st.Head()
	n.dropPending(applied)
	h := max(applied, n.lastAcked)
	// One time for every event the batch carries without one, as a
	// store stamps the events of a write.
	now := time.Now().UTC()
	verdicts := make([]verdict, len(group))
	var rnd round
	var batch []*appendRequest
	next := h + 1
	for i, r := range group {
		if !r.takenUp {
			if err := r.ctx.Err(); err != nil {
				r.done <- appendResult{err: err}
				continue
			}
			r.takenUp = true
		}
		if verdicts[i] = n.decide(r, &rnd); verdicts[i] != accepted {
			continue
		}
		for j, e := range r.events {
			if e.Timestamp.IsZero() {
				e.Timestamp = now
			}
			rnd.add(next+uint64(j), e)
		}
		next += uint64(len(r.events))
		r.last = next - 1
		batch = append(batch, r)
	}
	if len(batch) == 0 {
		return nil
	}
	msgs, id, events := batchMessages(batch, rnd.events, h, now)
	out := n.publish(msgs, h, id)
	if out.kind == committed {
		n.lastAcked = next - 1
		n.addPending(rnd.events)
		n.stats.batches.Add(1)
		n.stats.events.Add(uint64(len(rnd.events)))
		// The apply loop takes it from here, not waiting for the stream to
		// deliver it (see apply.go).
		_ = n.handOver(newSpan(h+1, events)) // fails only when the node closes
	}
	for i, r := range group {
		switch {
		case verdicts[i] == decided:
		case out.kind == committed && verdicts[i] == accepted:
			n.answerAt(r.last, r, appendResult{last: r.last})
		case out.kind == committed:
			n.answerAt(r.cause, r, r.ifCommit)
		case out.kind == moved:
			retry = append(retry, r)
		default:
			r.done <- appendResult{err: out.err}
		}
	}
	if out.kind == moved {
		// Check again once the replica holds what the stream has.
		if err := n.catchUp(out.target); err != nil {
			for _, r := range retry {
				r.done <- appendResult{err: fmt.Errorf("cluster: append: catching up after another node appended: %w", err)}
			}
			return nil
		}
	}
	return retry
}

// decide checks r against what this node knows of the stream and the
// round so far, as a store's writer checks an append: first whether r
// repeats events with the same IDs (dcb.Retried; before the condition,
// which a retry's own events would fail), then its condition. Unless r is
// accepted, it is answered (or its answer waits for the replica to apply
// the event it was decided on), or held on an event of the round.
func (n *Node) decide(r *appendRequest, rnd *round) verdict {
	if r.ids {
		look := idLookup{n: n, rnd: rnd}
		last, err := dcb.Retried(r.events, look.held)
		switch {
		case err != nil && !errors.Is(err, dcb.ErrIDConflict):
			r.done <- appendResult{err: fmt.Errorf("cluster: append: looking up event ids: %w", err)}
			return decided
		case err != nil:
			return n.decideOn(r, look.upTo, look.inRound, appendResult{err: fmt.Errorf("cluster: append: %w", err)})
		case last > 0:
			// A retry, answered with the positions its events have.
			return n.decideOn(r, last, look.inRound, appendResult{last: last})
		}
	}
	if c := r.cond; c != nil {
		f, err := n.conflict(c, rnd.events)
		switch {
		case err != nil:
			r.done <- appendResult{err: fmt.Errorf("cluster: append: checking the condition: %w", err)}
			return decided
		case f.at > 0:
			return n.decideOn(r, f.at, f.inRound, appendResult{err: conditionFailed(c, f)})
		}
	}
	return accepted
}

// decideOn answers r with res, decided on the event at pos: once the
// replica has applied pos, or, when pos is an event of the round, once the
// round's batch commits (held: if it does not, r is checked again).
func (n *Node) decideOn(r *appendRequest, pos uint64, inRound bool, res appendResult) verdict {
	if inRound {
		r.cause, r.ifCommit = pos, res
		return held
	}
	n.answerAt(pos, r, res)
	return decided
}

// conditionFailed is the error of an append whose condition c failed on
// f: an event matching it, or a lost position's marker, on which a node
// fails a condition as a store does (see dcb.SequencedEvent.Lost), saying
// so.
func conditionFailed(c *dcb.AppendCondition, f failure) error {
	if !f.lost {
		return fmt.Errorf("cluster: append: %w: an event matching the condition exists after position %d", dcb.ErrAppendConditionFailed, c.After)
	}
	return fmt.Errorf("cluster: append: %w", store.LostConditionFailed(c.After, f.at, f.typ))
}

// idLookup is the dcb.Held of one append's check: the event with an ID,
// among the events this node knows of: the round's, those it committed
// that its replica has not applied yet, and the replica's. It notes the
// furthest position it found and whether one was of the round, on which
// the append's answer then waits.
type idLookup struct {
	n       *Node
	rnd     *round
	upTo    uint64
	inRound bool
}

func (l *idLookup) held(id string) (uint64, dcb.Event, bool, error) {
	if i, ok := l.rnd.ids[id]; ok {
		p := l.rnd.events[i]
		l.upTo, l.inRound = max(l.upTo, p.pos), true
		return p.pos, p.event, true, nil
	}
	// Before the replica: what the replica applied meanwhile is still in
	// pending, and the replica holds what was dropped from it.
	p, ok := l.n.pendingIDs[id]
	if !ok {
		var err error
		if p.pos, p.event, ok, err = l.n.rep.st.EventByID(id); err != nil || !ok {
			return 0, dcb.Event{}, false, err
		}
	}
	l.upTo = max(l.upTo, p.pos)
	return p.pos, p.event, true, nil
}

// failure is where a condition failed: the position of the event (0:
// none), whether it is one of the round, and whether it is a lost
// position's marker, of type typ ("": unknown).
type failure struct {
	at      uint64
	inRound bool
	lost    bool
	typ     string
}

// conflict returns the first event known to this node that fails c. On
// the replica, that is the first its read of c's query yields: an event or
// a known marker that matches, or an unknown marker (which matches every
// query); the events this node committed are never markers.
func (n *Node) conflict(c *dcb.AppendCondition, round []pendingEvent) (failure, error) {
	q := c.FailIfEventsMatch
	if c.After < n.rep.st.Head() {
		for e, err := range n.rep.st.Read(n.ctx, q, store.ReadOptions{From: c.After + 1, Limit: 1}) {
			if err != nil {
				return failure{}, err
			}
			return failure{at: e.Position, lost: e.Lost, typ: e.Type}, nil
		}
	}
	for _, p := range n.pending {
		if p.pos > c.After && q.Matches(p.event) {
			return failure{at: p.pos}, nil
		}
	}
	for _, p := range round {
		if p.pos > c.After && q.Matches(p.event) {
			return failure{at: p.pos, inRound: true}, nil
		}
	}
	return failure{}, nil
}

// addPending records events, just committed, as pending until the replica
// applies them.
func (n *Node) addPending(events []pendingEvent) {
	n.pending = append(n.pending, events...)
	for _, p := range events {
		if p.event.ID != "" {
			if n.pendingIDs == nil {
				n.pendingIDs = map[string]pendingEvent{}
			}
			n.pendingIDs[p.event.ID] = p
		}
	}
}

// dropPending forgets the committed events the replica has applied.
func (n *Node) dropPending(applied uint64) {
	i := 0
	for i < len(n.pending) && n.pending[i].pos <= applied {
		if id := n.pending[i].event.ID; id != "" {
			delete(n.pendingIDs, id)
		}
		i++
	}
	n.pending = n.pending[i:]
	if len(n.pending) == 0 {
		n.pending, n.pendingIDs = nil, nil // let the backing array and map go
	}
}

// batchMessages returns the messages of batch, whose events are events
// (stamped), the first expecting the stream's last position to be h: each
// append's, the time now on those its caller gave none; and the events
// they carry.
func batchMessages(batch []*appendRequest, events []pendingEvent, h uint64, now time.Time) ([]*nats.Msg, string, []streamEvent) {
	msgs := make([]*nats.Msg, 0, len(events))
	for _, r := range batch {
		for i, m := range r.msgs {
			c := &nats.Msg{Subject: m.Subject, Header: maps.Clone(m.Header), Data: m.Data}
			if r.events[i].Timestamp.IsZero() {
				_ = setTime(c, now) // now is within the years RFC 3339 can write
			}
			msgs = append(msgs, c)
		}
	}
	carried := make([]streamEvent, len(events))
	for i, p := range events {
		carried[i] = streamEvent{Event: p.event}
	}
	return msgs, sealBatch(msgs, h), carried
}

// sealBatch makes msgs one append batch, the first expecting the stream's
// last position to be h: each marked with a new batch id, which it
// returns, the first with the batch's size.
func sealBatch(msgs []*nats.Msg, h uint64) string {
	id := nuid.Next()
	for i, m := range msgs {
		setBatch(m, id, i == 0, len(msgs))
	}
	// A second guard besides the expected last position: JetStream
	// refuses a batch whose message id it has seen (within the stream's
	// duplicate window).
	msgs[0].Header.Set(jetstream.MsgIDHeader, id)
	msgs[0].Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(h, 10))
	return id
}

// outcome is what became of a published batch.
type outcome struct {
	kind   outcomeKind
	target uint64 // moved: the stream's last position, to catch up to (0: ask)
	err    error  // failed: what to tell the callers
}

type outcomeKind uint8

const (
	committed outcomeKind = iota
	moved                 // not committed: the stream moved past the expected head
	failed                // not committed, or not known to be, for a reason to report
)

// JetStream's error codes the writer tells apart.
const (
	errCodeWrongLastSequence = 10071 // another batch got there first
	errCodeDuplicateMsgID    = 10201 // the batch's Nats-Msg-Id is in the stream
	errCodeBatchIncomplete   = 10176 // a message of the batch did not arrive
)

// publish publishes msgs, a batch expecting the stream's last position to
// be h, and learns what became of it.
func (n *Node) publish(msgs []*nats.Msg, h uint64, id string) outcome {
	err := n.publishOnce(msgs, h)
	switch {
	case err == nil:
		return outcome{kind: committed}
	case apiCode(err) == errCodeWrongLastSequence:
		n.stats.conflicts.Add(1)
		return outcome{kind: moved, target: wrongLastSequence(err)}
	case permanent(err):
		return outcome{kind: failed, err: fmt.Errorf("cluster: append: the stream refused the batch: %w", err)}
	}
	n.stats.unanswered.Add(1)
	n.log.Warn("possum: a publish went unanswered; reading the stream to learn whether it committed",
		"stream", n.opts.Stream, "expected_head", h, "batch", id, "events", len(msgs), "err", err)
	return n.resolve(msgs, h, id)
}

// publishOnce publishes msgs as one atomic batch and checks the
// acknowledgement.
func (n *Node) publishOnce(msgs []*nats.Msg, h uint64) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	ack, err := jetstreamext.PublishMsgBatch(ctx, n.js, msgs, jetstreamext.BatchFlowControl{AckTimeout: n.opts.Timeout})
	if err != nil {
		return err
	}
	if want := h + uint64(len(msgs)); ack.Sequence != want {
		return fmt.Errorf("the stream acknowledged the batch at position %d, not %d", ack.Sequence, want)
	}
	return nil
}

// resolve learns whether the batch id (msgs, expecting h) committed,
// after its publish went unanswered. It reads the stream until it knows,
// for as long as the node is open.
func (n *Node) resolve(msgs []*nats.Msg, h uint64, id string) outcome {
	unknown := func(why error) outcome {
		return outcome{kind: failed, err: fmt.Errorf("cluster: append: %w; the batch expecting position %d was published and may have been committed at %d..%d: read the store to learn it",
			why, h, h+1, h+uint64(len(msgs)))}
	}
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(backoff):
			case <-n.ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
		}
		if n.ctx.Err() != nil {
			return unknown(store.ErrClosed)
		}
		last, err := n.streamLast(n.ctx)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return unknown(err)
		}
		if err != nil {
			continue
		}
		switch {
		case last < h:
			return outcome{kind: failed, err: fmt.Errorf("cluster: append: %w: the stream's last position is %d, below %d, which this node saw: was the stream deleted and made again?", store.ErrCorrupt, last, h)}
		case last > h:
			at, err := n.batchAt(h + 1)
			if err != nil {
				continue
			}
			if at == id {
				return outcome{kind: committed}
			}
			return outcome{kind: moved, target: last}
		}
		// The stream is still at h: the batch has not committed, and
		// might yet. Publish it again, expecting h as before: at most one
		// of the two can commit, and either way the stream then moves.
		n.stats.republished.Add(1)
		err = n.publishOnce(msgs, h)
		switch {
		case err == nil:
			return outcome{kind: committed}
		case permanent(err):
			return outcome{kind: failed, err: fmt.Errorf("cluster: append: the stream refused the batch: %w", err)}
		}
	}
}

// batchAt returns the batch id of the message at pos.
func (n *Node) batchAt(pos uint64) (string, error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	m, err := n.stream.GetMsg(ctx, pos)
	if err != nil {
		return "", err
	}
	return m.Header.Get(hdrBatch), nil
}

// catchUp waits until the replica has applied the stream up to target, or,
// when target is 0, up to the stream's last position.
func (n *Node) catchUp(target uint64) error {
	for target == 0 {
		last, err := n.streamLast(n.ctx)
		if err == nil {
			target = last
			break
		}
		if n.ctx.Err() != nil {
			return store.ErrClosed
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		n.log.Warn("possum: asking the stream for its last position", "stream", n.opts.Stream, "err", err)
		select {
		case <-time.After(100 * time.Millisecond):
		case <-n.ctx.Done():
		}
	}
	return n.waitApplied(n.ctx, target)
}

// apiCode returns the JetStream error code err carries, 0 when none.
func apiCode(err error) jetstream.ErrorCode {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode
	}
	return 0
}

// permanent reports whether err is JetStream refusing the batch for good:
// a request it will refuse again (a 400 or 404 answer) for another reason
// than the stream having moved or a message having gone missing.
func permanent(err error) bool {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) || ae.Code != 400 && ae.Code != 404 {
		return false
	}
	switch ae.ErrorCode {
	case errCodeWrongLastSequence, errCodeDuplicateMsgID, errCodeBatchIncomplete:
		return false
	}
	return true
}

// wrongLastSequence returns the stream's last position a "wrong last
// sequence: N" error names, 0 when it names none.
func wrongLastSequence(err error) uint64 {
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return 0
	}
	i := strings.LastIndexByte(ae.Description, ' ')
	v, perr := strconv.ParseUint(ae.Description[i+1:], 10, 64)
	if perr != nil {
		return 0
	}
	return v
}

// answerAt answers r with res once the replica has applied pos.
func (n *Node) answerAt(pos uint64, r *appendRequest, res appendResult) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.rep.st.Head() >= pos:
		r.done <- res
	case n.applyErr != nil:
		r.done <- n.unapplied(waiter{pos, r, res})
	default:
		n.waiters = append(n.waiters, waiter{pos, r, res})
	}
}

// unapplied is the answer to w when the replica stopped before pos.
func (n *Node) unapplied(w waiter) appendResult {
	if w.res.err != nil {
		return w.res // a rejection: the event it failed on is committed
	}
	return appendResult{err: fmt.Errorf("cluster: append: committed at position %d, but this node's replica stopped applying the stream: %w", w.pos, n.applyErr)}
}
