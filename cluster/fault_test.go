package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// load runs deciders on nodes until stopped, recording every
// acknowledged append.
type load struct {
	t        *testing.T
	stopping atomic.Bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu    sync.Mutex
	acked map[uint64]string
	grew  chan struct{} // closed and replaced on every acknowledgement
}

// startLoad starts deciders deciders on each node, contending for a few
// counters.
func startLoad(t *testing.T, nodes []*Node, deciders int) *load {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	l := &load{t: t, cancel: cancel, acked: map[uint64]string{}, grew: make(chan struct{})}
	for i, n := range nodes {
		for d := range deciders {
			who := fmt.Sprintf("n%d.d%d", i, d)
			l.wg.Go(func() {
				for k := 0; !l.stopping.Load(); k++ {
					pos, _, err := decide(ctx, n, who, fmt.Sprintf("counter:%d", (d+k)%3))
					if !assert.NoError(t, err, who) {
						return
					}
					l.mu.Lock()
					if prev, dup := l.acked[pos]; dup {
						t.Errorf("position %d acknowledged to %s and to %s", pos, prev, who)
					}
					l.acked[pos] = who
					close(l.grew)
					l.grew = make(chan struct{})
					l.mu.Unlock()
				}
			})
		}
	}
	return l
}

// count returns how many appends were acknowledged.
func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitMore waits until k more appends than now are acknowledged.
func (l *load) waitMore(k int, why string) {
	l.t.Helper()
	l.mu.Lock()
	target := len(l.acked) + k
	l.mu.Unlock()
	deadline := time.After(2 * time.Minute)
	start := time.Now()
	for {
		l.mu.Lock()
		n, grew := len(l.acked), l.grew
		l.mu.Unlock()
		if n >= target {
			l.t.Logf("%d more appends in %v %s", k, time.Since(start).Round(time.Millisecond), why)
			return
		}
		select {
		case <-grew:
		case <-deadline:
			l.t.Fatalf("%d of %d appends acknowledged: %s", n, target, why)
		}
	}
}

// stop stops the deciders, letting the appends under way finish (so
// that every append in the store was answered).
func (l *load) stop() map[uint64]string {
	l.stopping.Store(true)
	l.wg.Wait()
	l.cancel()
	return l.acked
}

// streamLeader returns the name of the server leading stream.
func streamLeader(t testing.TB, url, stream string) string {
	t.Helper()
	js := jsFor(t, url)
	var leader string
	eventually(t, "the stream has a leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return false
		}
		info := st.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return false
		}
		leader = info.Cluster.Leader
		return true
	})
	return leader
}

// checkAfterFaults stops the load and checks the store the nodes share:
// every node caught up, every decision matched the events before it,
// every acknowledged append is at its position once, nothing else is in
// the store, and the replicas equal the stream.
func checkAfterFaults(t *testing.T, l *load, url, stream string, nodes []*Node) {
	t.Helper()
	acked := l.stop()
	require.False(t, t.Failed())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var head uint64
	for _, n := range nodes {
		h, err := n.CatchUp(ctx)
		require.NoError(t, err)
		head = max(head, h)
	}
	events := readAll(t, nodes[0])
	require.Len(t, events, int(head))
	checkDecisions(t, events, acked)
	assert.Len(t, acked, len(events), "every event in the store was acknowledged to its decider: none twice, none lost")
	converged(t, url, stream, nodes...)
	st := sumStats(nodes)
	t.Logf("%d appends; %d conflicts, %d unanswered publishes (%d published again)", len(acked), st.Conflicts, st.Unanswered, st.Republished)
}

// TestServerShutDownUnderLoad: three nodes append with conditions while
// the NATS server leading the stream is shut down and later started
// again, several times with POSSUM_CLUSTER_SOAK. No acknowledged append is
// lost or duplicated, positions stay gap-free, and appends resume once
// JetStream has a new leader.
func TestServerShutDownUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take seconds")
	}
	c := sharedServers(t)
	stream := newStreamName()
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = openNodeWith(t, t.TempDir(), &Options{URL: c.url(), Stream: stream, Replicas: 3, Timeout: time.Second})
	}
	l := startLoad(t, nodes, 3)
	l.waitMore(30, "before any fault")
	for range soak(t) {
		leader := streamLeader(t, c.url(), stream)
		if leader == c.servers[childServer].spec.Name {
			makeLeader(t, c.url(), stream, c.servers[0].spec.Name, c.servers[1].spec.Name)
			leader = streamLeader(t, c.url(), stream)
		}
		i := int(leader[1] - '1')
		c.stop(i)
		l.waitMore(30, "after the leader "+leader+" was shut down")
		c.start(t, i)
		l.waitMore(30, "after "+leader+" came back")
	}
	checkAfterFaults(t, l, c.url(), stream, nodes)
	require.NoError(t, waitR3(c.url()), "the cluster is whole again for the tests after this one")
}

// TestServerKilledUnderLoad: as TestServerShutDownUnderLoad, but the
// server leading the stream runs in a child process killed with SIGKILL
// (no goodbye to its peers, its files as the kill left them), and is
// started again on them.
func TestServerKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("elections take seconds")
	}
	c := sharedServers(t)
	url := c.url()
	stream := newStreamName()
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = openNodeWith(t, t.TempDir(), &Options{URL: url, Stream: stream, Replicas: 3, Timeout: time.Second})
	}
	l := startLoad(t, nodes, 3)
	l.waitMore(30, "before any fault")
	child := c.servers[childServer]
	for range soak(t) {
		makeLeader(t, url, stream, child.spec.Name)
		l.waitMore(10, "with the child leading")
		c.stop(childServer)
		l.waitMore(30, "after the leader was killed")
		c.start(t, childServer)
		l.waitMore(30, "after the killed server came back")
	}
	checkAfterFaults(t, l, url, stream, nodes)
	require.NoError(t, waitR3(url), "the cluster is whole again for the tests after this one")
}

// makeLeader asks the stream's leader to hand over to one of the servers
// names, each in turn. It asks only while that one's replica is current (a restarted server
// catching up would be passed over for another), and after each request
// waits for the election it caused to end (a leader other than the one
// asked, or a few seconds: the same one may win again): asking again
// meanwhile could step down the very leader the first request made.
func makeLeader(t *testing.T, url, stream string, names ...string) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js := jsFor(t, url)
	info := func() *jetstream.ClusterInfo {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return nil
		}
		return st.CachedInfo().Cluster
	}
	deadline := time.Now().Add(2 * time.Minute)
	for ask := 0; ; ask++ {
		ci := info()
		if ci != nil && slices.Contains(names, ci.Leader) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until one of %v leads the stream", names)
		}
		name := names[ask%len(names)]
		if ci == nil || ci.Leader == "" || !replicaCurrent(ci, name) {
			time.Sleep(50 * time.Millisecond) // polling the NATS servers' state, with a deadline
			continue
		}
		body := fmt.Sprintf(`{"placement":{"preferred":%q}}`, name)
		msg, err := nc.Request(fmt.Sprintf("$JS.API.STREAM.LEADER.STEPDOWN.%s", stream), []byte(body), 5*time.Second)
		var resp struct{ Success bool }
		if err != nil || json.Unmarshal(msg.Data, &resp) != nil || !resp.Success {
			time.Sleep(50 * time.Millisecond) // no election began: ask again soon, with the deadline above
			continue
		}
		// The election may elect the same leader again: wait a while for
		// another, then look again from the top.
		was := ci.Leader
		for wait := time.Now().Add(5 * time.Second); time.Now().Before(wait); {
			if ci := info(); ci != nil && ci.Leader != "" && ci.Leader != was {
				break
			}
			time.Sleep(50 * time.Millisecond) // polling the NATS servers' state, with a deadline
		}
	}
}

// replicaCurrent reports whether the server name holds a current, online
// replica in the stream's cluster.
func replicaCurrent(ci *jetstream.ClusterInfo, name string) bool {
	for _, r := range ci.Replicas {
		if r.Name == name {
			return r.Current && !r.Offline
		}
	}
	return false
}

// nodeChildEnv asks for a child process running a node that appends in a
// loop: "URL STREAM DIR". It prints "ack POSITION" for every append
// acknowledged, until it is killed.
const nodeChildEnv = "POSSUM_CLUSTER_TEST_NODE"

func init() { child.Register(nodeChildEnv, runNodeChild) }

func runNodeChild(arg string) {
	f := strings.Fields(arg)
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "node child: want URL STREAM DIR, got", arg)
		os.Exit(2)
	}
	ctx := context.Background()
	n, err := Open(ctx, f[2], &Options{URL: f[0], Stream: f[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, "node child:", err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	var after uint64
	for k := 0; ; k++ {
		pos, err := n.Append(ctx, []dcb.Event{{Type: "Noted", Tags: []string{"child"}, Data: fmt.Appendf(nil, `{"k":%d}`, k)}},
			&dcb.AppendCondition{FailIfEventsMatch: tagQuery("child"), After: after})
		if err != nil {
			fmt.Fprintln(os.Stderr, "node child:", err)
			os.Exit(1)
		}
		after = pos
		fmt.Fprintf(out, "ack %d %d\n", pos, k)
		out.Flush()
	}
}

// TestNodeKilledCatchesUp: a node appending in a child process is killed
// with SIGKILL; while it is down another node appends; opened again on its
// directory it catches up, holds every append it acknowledged, and agrees
// with the stream.
func TestNodeKilledCatchesUp(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	dir := t.TempDir()
	other := openNode(t, url, stream, t.TempDir(), 0)

	cmd := child.Command(nodeChildEnv, strings.Join([]string{url, stream, dir}, " "))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	acked := map[uint64]int{}
	lines := bufio.NewScanner(out)
	for len(acked) < scaled(t, 40) && lines.Scan() {
		var pos uint64
		var k int
		_, err := fmt.Sscanf(lines.Text(), "ack %d %d", &pos, &k)
		require.NoError(t, err, lines.Text())
		acked[pos] = k
	}
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.NotEmpty(t, acked, "the child acknowledged nothing: %s", stderr.String())

	for k := range 25 {
		_, err := other.Append(t.Context(), []dcb.Event{{Type: "Other", Data: fmt.Appendf(nil, `{"k":%d}`, k)}}, nil)
		require.NoError(t, err)
	}
	n := openNode(t, url, stream, dir, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	head, err := n.CatchUp(ctx)
	require.NoError(t, err)
	events := readAll(t, n)
	require.Len(t, events, int(head))
	for pos, k := range acked {
		e := events[pos-1]
		assert.Equal(t, "Noted", e.Type, "position %d", pos)
		assert.JSONEq(t, fmt.Sprintf(`{"k":%d}`, k), string(e.Data), "position %d", pos)
	}
	converged(t, url, stream, n, other)
	_, err = n.Append(t.Context(), []dcb.Event{{Type: "After"}}, nil)
	require.NoError(t, err)
}
