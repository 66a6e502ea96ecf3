package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenWhileServersStart: three nodes opened before any of the three
// NATS servers of their R3 stream listens (as one script or a service
// manager starts them all together) wait for the servers to listen, form
// their cluster and elect a leader, and then work: a conditional append
// on one node fails on another once both see it.
func TestOpenWhileServersStart(t *testing.T) {
	t.Parallel()
	c := &testCluster{}
	for _, sp := range clusterSpecs(t, 3, t.TempDir()) {
		c.servers = append(c.servers, &testServer{spec: sp})
	}
	t.Cleanup(c.shutdown)
	url, stream := c.url(), newStreamName()

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	nodes := make([]*Node, 3)
	errs := make([]error, 3)
	var opened sync.WaitGroup
	for i := range nodes {
		opened.Go(func() {
			nodes[i], errs[i] = Open(ctx, t.TempDir(), &Options{URL: url, Stream: stream, Replicas: 3, StartWait: time.Minute})
		})
	}
	// The nodes are opening (they find no server) while the servers start.
	var started sync.WaitGroup
	for _, ts := range c.servers {
		started.Go(func() { assert.NoError(t, ts.start()) })
	}
	started.Wait()
	opened.Wait()
	for i, n := range nodes {
		require.NoError(t, errs[i], "node %d", i)
		t.Cleanup(func() { n.Close() })
	}

	course := dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"course:c1"}}}}
	ev := []dcb.Event{{Type: "CourseDefined", Tags: []string{"course:c1"}}}
	pos, err := nodes[0].Append(ctx, ev, &dcb.AppendCondition{FailIfEventsMatch: course})
	require.NoError(t, err)
	_, err = nodes[2].Append(ctx, ev, &dcb.AppendCondition{FailIfEventsMatch: course})
	require.ErrorIs(t, err, dcb.ErrAppendConditionFailed, "the other node's append is in the stream")
	head, err := nodes[1].CatchUp(ctx)
	require.NoError(t, err)
	assert.Equal(t, pos, head)
}
