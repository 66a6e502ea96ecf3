// Package cluster runs a possum store on more than one machine, on NATS
// JetStream: the stream is the replicated log, and every node keeps a
// local possum store as its replica.
//
// One JetStream stream holds one store. Each event is one message, and
// the message's stream sequence is the event's position: the stream keeps
// every message for ever and never deletes one (DenyDelete, DenyPurge, no
// limits), so positions stay gap-free and are never reused. The message
// layout (subject <prefix>.<escaped type>, tags, metadata, timestamp and
// id in headers, the data as the body) is in docs/FORMAT.md, so that any
// NATS client in any language can read the store with a plain consumer.
//
// A node (Open) appends to the stream and applies it to its replica, a
// store.Store in its own directory:
//
//   - An append is one atomic batch (JetStream's atomic batch publish)
//     whose first message expects the stream's last position to be the
//     head H at which the node checked the append's condition. If another
//     node appended after H, JetStream refuses the whole batch; the node
//     waits for its replica to apply what the stream holds and checks
//     again, so the condition then fails (dcb.ErrAppendConditionFailed) or
//     the append goes in at the new head. Every DCB guarantee of a single
//     store holds across nodes.
//   - The expected head guards the whole stream, so two batches in flight
//     always conflict: each node's writer gathers its local callers'
//     appends, checks them in order (each against those before it), and
//     publishes them as one batch. Contention is between nodes, not
//     callers.
//   - The replica is applied from the stream in order, each batch whole,
//     with the store's public Append under a condition that pins the
//     positions. Reads, Subscribe, followers (store.Follow), the event and
//     index files all work on every node, unchanged; the replica never
//     holds an event the stream does not. An append is answered once
//     JetStream acknowledged its batch and the replica applied it, so a
//     Read on the same node right after sees it.
//   - A publish whose answer is lost (a timeout, a dropped connection) is
//     resolved by reading the stream at position H+1, never by appending
//     again blindly (see Node.Append).
//   - Events keep their IDs and timestamps (dcb.Event), in the stream and
//     in every replica. An append whose events all carry IDs the stream
//     holds is a retry (dcb.Retried, the store's own rule, checked before
//     the condition against the replica, the batches the node committed
//     that the replica has not applied, and the appends before it in its
//     batch): answered with their positions, written nothing. Together
//     with the expected head, this makes an append sent again through any
//     node, however many times and at once, land once.
//   - A lost position (dcb.SequencedEvent.Lost: an event a store lost to
//     disk damage, its position kept by a marker) travels as a marker
//     message (Possum-Lost: 1), which Push publishes for the markers of
//     the store it pushes. A replica appends it with store.AppendLost, so
//     every node holds the same marker, with the same known type and tags,
//     at the same position, and lists it in its LOST file. A node checks a
//     condition against a marker as a store does: an append whose
//     condition's range holds a marker that might have matched fails,
//     saying the position was lost.
//
// Durability is JetStream's: an acknowledged append is on a quorum of the
// stream's replicas (Options.Replicas; use 3 on three servers). JetStream
// fsyncs its files every two minutes by default, so a power loss of a
// quorum at once can lose recent appends unless the servers run with
// sync_interval: always.
//
// The packages store, dcb and decision import nothing of NATS; this one
// sits above store and uses only its public API.
package cluster
