package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS servers started together with the nodes (by one script, or by a
// service manager) refuse connections until they listen, and drop or
// refuse JetStream requests until their routes form and a meta leader is
// elected: for a few seconds, a node that opens finds servers that are
// starting, not servers that are down. Open tries again meanwhile.

// startRetryEvery is the pause between two tries.
const startRetryEvery = 250 * time.Millisecond

// whileStarting calls try until it succeeds, fails otherwise than NATS
// servers that are starting fail, or o.StartWait (and ctx) ends; each try
// gets at most o.Timeout. The last try's error is returned.
func whileStarting(ctx context.Context, o Options, try func(ctx context.Context) error) error {
	wait := o.StartWait
	if wait < 0 {
		wait = 0
	}
	deadline := time.Now().Add(wait)
	for {
		tctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := try(tctx)
		cancel()
		if err == nil || !starting(err) || ctx.Err() != nil || time.Now().Add(startRetryEvery).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(startRetryEvery):
		}
	}
}

// starting reports whether err is how NATS servers that are starting
// answer: no server listening, no JetStream responder, a request dropped
// (its try timed out), no meta leader, or too few servers known yet for
// the stream's replicas.
func starting(err error) bool {
	if errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return true
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case jsClusterNotAvailable, jsClusterNoPeers, jsInsufficientResources:
			return true
		}
	}
	return false
}

// JetStream's error codes for a cluster that is not ready (nats-server's
// errors.json; the client names none of them).
const (
	jsClusterNoPeers        jetstream.ErrorCode = 10005 // no suitable peers for placement
	jsClusterNotAvailable   jetstream.ErrorCode = 10008 // JetStream system temporarily unavailable
	jsInsufficientResources jetstream.ErrorCode = 10023 // insufficient resources
)
