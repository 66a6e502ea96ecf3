package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// natsServer runs a NATS server with JetStream in this process, on
// 127.0.0.1 at a port the OS picks, until the test ends; the possum
// processes the test starts connect to the URL it returns.
func natsServer(t *testing.T) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: t.TempDir(), JetStreamMaxMemory: 64 << 20, JetStreamMaxStore: 1 << 30,
	})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(20*time.Second), "the NATS server did not start")
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// seedPlainStore writes n events to a new store in dir (every other with
// an ID, every third with a timestamp of its own) and closes it.
func seedPlainStore(t *testing.T, dir, typ string, n int) {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	var batch []dcb.Event
	for i := range n {
		e := dcb.Event{Type: typ, Tags: []string{fmt.Sprintf("k:%d", i%3)}, Data: fmt.Appendf(nil, `{"i":%d}`, i)}
		if i%2 == 0 {
			e.ID = fmt.Sprintf("%s-%d", typ, i)
		}
		if i%3 == 0 {
			e.Timestamp = time.Unix(1e9, int64(i)).UTC()
		}
		batch = append(batch, e)
	}
	_, err = s.Append(t.Context(), batch, nil)
	require.NoError(t, err)
}

// TestServeNATSAndPush runs possum as processes: a store pushed into a
// new stream (positions, timestamps and ids kept; pushed again, nothing;
// another store onto it, refused), its directory served as a node, and an
// empty directory served as a second node, caught up before it serves.
// An append through one node's socket (possum append) and one over the
// other's HTTP API are on both; an append sent again, with its ids,
// through the other node is answered with its positions, one copy. Both
// replicas then print the same NDJSON, byte for byte; interrupted, each
// serve exits 0, and its directory opens as a plain store.
func TestServeNATSAndPush(t *testing.T) {
	nurl := natsServer(t)
	base := t.TempDir()
	a, b, c := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")
	seedPlainStore(t, a, "Seeded", 30)
	seedPlainStore(t, b, "Other", 5)
	stream := "orders"

	r := possum(t, "", "push", a, "--nats", nurl, "--stream", stream)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Equal(t, fmt.Sprintf("pushed %s into stream orders: positions 1..30 of 30 (1 batch)", a), regexp.MustCompile(` in [0-9.]+m?s\n$`).ReplaceAllString(r.stdout, ""))
	r = possum(t, "", "push", a, "--nats", nurl, "--stream", stream, "--json")
	require.Equal(t, 0, r.code, "%s", r)
	var rep pushReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Equal(t, pushReport{Dir: a, Stream: stream, Had: 30, Head: 30}, pushReport{Dir: rep.Dir, Stream: rep.Stream, Had: rep.Had, Pushed: rep.Pushed, Head: rep.Head, Batches: rep.Batches})
	r = possum(t, "", "push", b, "--nats", nurl, "--stream", stream)
	assert.Equal(t, 2, r.code, "%s", r)
	assert.Contains(t, r.stderr, "possum push: cluster: push: stream \"orders\" holds 30 events, the store only 5")

	_, lineA := startServe(t, a, "--nats", nurl, "--stream", stream)
	assert.Contains(t, lineA, fmt.Sprintf("serving %s as a node of stream orders at %s (head 30) on unix socket", a, nurl))
	nodeC, lineC := startServe(t, c, "--nats", nurl, "--stream", stream, "--listen", "127.0.0.1:0")
	assert.Contains(t, lineC, "(head 30)", "a new node serves once it caught up")

	r = possum(t, "", "append", c, "--type", "Enrolled", "--tag", "k:1")
	require.Equal(t, 0, r.code, "%s", r)
	assert.Equal(t, "31\n", r.stdout)
	addr := regexp.MustCompile(`http://[0-9.:]+`).FindString(lineC)
	require.NotEmpty(t, addr, lineC)
	overHTTP, err := client.DialURL(addr, "")
	require.NoError(t, err)
	defer overHTTP.Close()
	paid := []dcb.Event{{Type: "Paid", Tags: []string{"order:1"}, ID: "pay-1"}, {Type: "Shipped", Tags: []string{"order:1"}, ID: "ship-1"}}
	cond := &dcb.AppendCondition{FailIfEventsMatch: dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"order:1"}}}}, After: 31}
	last, err := overHTTP.Append(t.Context(), paid, cond)
	require.NoError(t, err)
	assert.Equal(t, uint64(33), last)
	throughA, err := client.Dial(a)
	require.NoError(t, err)
	defer throughA.Close()
	last, err = throughA.Append(t.Context(), paid, cond)
	require.NoError(t, err, "sent again through node a: a retry, whatever its condition")
	assert.Equal(t, uint64(33), last)

	// Both replicas hold the stream, and print it alike.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ra, rc := possum(t, "", "read", a), possum(t, "", "read", c)
		require.Equal(t, 0, ra.code, "%s", ra)
		require.Equal(t, 0, rc.code, "%s", rc)
		if ra.stdout == rc.stdout && strings.Count(ra.stdout, "\n") == 33 {
			assert.Equal(t, 1, strings.Count(ra.stdout, `"pay-1"`), "one copy")
			break
		}
		require.True(t, time.Now().Before(deadline), "node a never caught up:\n%s\nnode c:\n%s", ra.stdout, rc.stdout)
		time.Sleep(20 * time.Millisecond) // polling another process's replica, with a deadline
	}

	require.NoError(t, nodeC.Process.Signal(os.Interrupt))
	require.NoError(t, nodeC.Wait(), "an interrupted serve exits 0")
	s, err := store.Open(c, nil)
	require.NoError(t, err)
	defer s.Close()
	events, err := collectEvents(s.Read(t.Context(), dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	require.Len(t, events, 33)
	assert.Equal(t, "Seeded-0", events[0].ID, "the pushed ids")
	assert.Equal(t, time.Unix(1e9, 3).UTC(), events[3].Timestamp, "the pushed timestamps, to the nanosecond")
	assert.Equal(t, "ship-1", events[32].ID)
}

// TestServeNATSUsage: serve --nats without --stream, --stream without
// --nats, --replicas out of range, push without --nats, an unreachable
// NATS server, push of what is no store: exit 2 with a message, and
// nothing created.
func TestServeNATSUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", dir, "--nats", "nats://127.0.0.1:4222"}, "possum serve: --nats needs --stream"},
		{[]string{"serve", dir, "--stream", "s"}, "possum serve: --stream, --subject and --replicas name a store on NATS: give --nats too"},
		{[]string{"serve", dir, "--nats", "nats://127.0.0.1:4222", "--stream", "s", "--replicas", "7"}, "possum serve: --replicas 7: JetStream keeps 1 to 5 replicas"},
		{[]string{"push", dir, "--stream", "s"}, "possum push: --nats is required"},
		{[]string{"push", dir, "--nats", "nats://127.0.0.1:4222", "--stream", "s"}, "possum push: no store at " + dir},
		{[]string{"serve", dir, "--nats", "nats://127.0.0.1:1", "--stream", "s", "--nats-wait", "0"}, "possum serve: cluster: connecting to NATS at nats://127.0.0.1:1"},
		{[]string{"serve", dir, "--nats", "nats://127.0.0.1:1", "--stream", "s", "--nats-wait", "-1s"}, "possum serve: --nats-wait -1s is negative"},
	} {
		r := possum(t, "", c.args...)
		assert.Equal(t, 2, r.code, "%q: %s", c.args, r)
		assert.Contains(t, r.stderr, c.want, "%q", c.args)
		assert.Empty(t, r.stdout, "%q", c.args)
		assert.NoDirExists(t, dir, "%q", c.args)
	}
}
