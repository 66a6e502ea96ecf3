package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jsFor connects to url for a test's own look at the stream.
func jsFor(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// streamState returns the configuration and state of stream.
func streamState(t testing.TB, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	st, err := js.Stream(t.Context(), name)
	require.NoError(t, err)
	info, err := st.Info(t.Context())
	require.NoError(t, err)
	return info
}

func openErr(t testing.TB, url, name, dir string, replicas int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	n, err := Open(ctx, dir, &Options{URL: url, Stream: name, Replicas: replicas})
	if err == nil {
		n.Close()
	}
	return err
}

// TestWrongStreamConfigRefused: a stream that exists with a setting possum
// cannot work with is refused with an error naming the setting; neither
// the stream nor the node's directory is touched.
func TestWrongStreamConfigRefused(t *testing.T) {
	url := sharedSingle(t)
	js := jsFor(t, url)
	cases := map[string]struct {
		spoil   func(c *jetstream.StreamConfig)
		setting string
	}{
		"deletes allowed": {func(c *jetstream.StreamConfig) { c.DenyDelete = false }, "deny_delete"},
		"purges allowed":  {func(c *jetstream.StreamConfig) { c.DenyPurge = false }, "deny_purge"},
		"no atomic batch": {func(c *jetstream.StreamConfig) { c.AllowAtomicPublish = false }, "allow_atomic"},
		"an age limit":    {func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour }, "max_age"},
		"a count limit":   {func(c *jetstream.StreamConfig) { c.MaxMsgs = 1000 }, "max_msgs"},
		"other subjects":  {func(c *jetstream.StreamConfig) { c.Subjects = append(c.Subjects, "other.>") }, "subjects"},
		"work queue":      {func(c *jetstream.StreamConfig) { c.Retention = jetstream.WorkQueuePolicy }, "retention"},
		"memory storage":  {func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }, "storage"},
		"TTLs allowed":    {func(c *jetstream.StreamConfig) { c.AllowMsgTTL = true }, "allow_msg_ttl"},
		"other replicas":  {nil, "replicas"},
		"acks turned off": {func(c *jetstream.StreamConfig) { c.NoAck = true }, "no_ack"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			stream := newStreamName()
			cfg := streamConfig(stream, stream, 1)
			if c.spoil != nil {
				c.spoil(&cfg)
			}
			_, err := js.CreateStream(t.Context(), cfg)
			require.NoError(t, err)
			before := streamState(t, js, stream)
			dir := filepath.Join(t.TempDir(), "node")
			replicas := 0
			if c.spoil == nil {
				replicas = 3
			}
			err = openErr(t, url, stream, dir, replicas)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.setting)
			assert.Contains(t, err.Error(), stream)
			after := streamState(t, js, stream)
			assert.Equal(t, before.Config, after.Config, "the stream's configuration is untouched")
			assert.Equal(t, before.State.LastSeq, after.State.LastSeq)
			assert.NoDirExists(t, dir, "nothing written to the node's directory")
		})
	}
}

// TestForeignStreamRefused: a stream possum did not write is refused,
// whether it lacks possum's metadata or holds a message that is not
// possum's layout; an empty stream set up right by someone else is
// adopted.
func TestForeignStreamRefused(t *testing.T) {
	url := sharedSingle(t)
	js := jsFor(t, url)
	ctx := t.Context()

	t.Run("not made by possum", func(t *testing.T) {
		stream := newStreamName()
		cfg := streamConfig(stream, stream, 1)
		cfg.Metadata = nil
		_, err := js.CreateStream(ctx, cfg)
		require.NoError(t, err)
		_, err = js.Publish(ctx, stream+".Thing", []byte("hello"))
		require.NoError(t, err)
		dir := filepath.Join(t.TempDir(), "node")
		err = openErr(t, url, stream, dir, 0)
		require.ErrorContains(t, err, "was not made by possum")
		assert.NoDirExists(t, dir)
		assert.Equal(t, uint64(1), streamState(t, js, stream).State.LastSeq)
	})
	t.Run("a message not in possum's layout", func(t *testing.T) {
		stream := newStreamName()
		_, err := js.CreateStream(ctx, streamConfig(stream, stream, 1))
		require.NoError(t, err)
		_, err = js.Publish(ctx, stream+".Thing", []byte(`{"x":1}`))
		require.NoError(t, err)
		dir := filepath.Join(t.TempDir(), "node")
		err = openErr(t, url, stream, dir, 0)
		require.ErrorIs(t, err, errLayout)
		require.ErrorContains(t, err, "is not a possum store: message 1")
		assert.NoDirExists(t, dir)
	})
	t.Run("empty, set up by an operator", func(t *testing.T) {
		stream := newStreamName()
		cfg := streamConfig(stream, stream, 1)
		cfg.Metadata = nil
		_, err := js.CreateStream(ctx, cfg)
		require.NoError(t, err)
		n := openNode(t, url, stream, t.TempDir(), 0)
		_, err = n.Append(ctx, []dcb.Event{{Type: "A"}}, nil)
		require.NoError(t, err)
		assert.Equal(t, layoutVersion, streamState(t, js, stream).Config.Metadata[metaLayout])
	})
	t.Run("another layout version", func(t *testing.T) {
		stream := newStreamName()
		cfg := streamConfig(stream, stream, 1)
		cfg.Metadata = map[string]string{metaLayout: "2"}
		_, err := js.CreateStream(ctx, cfg)
		require.NoError(t, err)
		require.ErrorContains(t, openErr(t, url, stream, t.TempDir(), 0), `possum layout "2"`)
	})
}

// TestForeignMessageStopsTheReplica: a message published into the store's
// subjects by something other than possum stops every replica at its
// position, with store.ErrCorrupt, rather than being skipped (its position
// would then be another event's); appends then fail, saying so, and reads
// still serve what was applied.
func TestForeignMessageStopsTheReplica(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	n := openNode(t, url, stream, t.TempDir(), 0)
	ctx := t.Context()
	_, err := n.Append(ctx, []dcb.Event{{Type: "A"}}, nil)
	require.NoError(t, err)
	_, err = jsFor(t, url).Publish(ctx, stream+".B", []byte(`{}`))
	require.NoError(t, err)

	_, err = n.Append(ctx, []dcb.Event{{Type: "C"}}, nil)
	require.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), "position 2")
	assert.ErrorIs(t, n.ClusterStats().ApplyErr, store.ErrCorrupt)
	assert.Equal(t, uint64(1), n.Head(), "the replica holds what it applied")
	assert.Len(t, readAll(t, n), 1)
}

// TestAppendOverBatchLimits: an append one JetStream batch cannot carry is
// refused with dcb.ErrInvalidEvent naming the limit, and nothing reaches
// the stream.
func TestAppendOverBatchLimits(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	n := openNode(t, url, stream, t.TempDir(), 0)
	ctx := t.Context()
	many := make([]dcb.Event, MaxAppendEvents+1)
	for i := range many {
		many[i] = dcb.Event{Type: "A"}
	}
	big := `"` + strings.Repeat("x", 1<<20) + `"`
	cases := map[string]struct {
		events []dcb.Event
		limit  string
	}{
		"1,001 events":          {many, "1000-event limit"},
		"an event of 1 MiB":     {[]dcb.Event{{Type: "A"}, {Type: "A", Data: []byte(big)}}, "max_payload"},
		"70 KiB of tags":        {[]dcb.Event{{Type: "A", Tags: []string{strings.Repeat("t", 70<<10)}}}, "header limit"},
		"70 KiB of metadata":    {[]dcb.Event{{Type: "A", Metadata: map[string]string{"k": strings.Repeat("ü", 12<<10)}}}, "header limit"},
		"a type of 3,000 bytes": {[]dcb.Event{{Type: strings.Repeat("T", 3000)}}, "subject"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := n.Append(ctx, c.events, nil)
			require.ErrorIs(t, err, dcb.ErrInvalidEvent)
			assert.Contains(t, err.Error(), c.limit)
			out := n.AppendMany(ctx, []store.AppendItem{{Events: c.events}})
			assert.ErrorIs(t, out[0].Err, dcb.ErrInvalidEvent)
		})
	}
	// Exactly at the limits, it goes.
	last, err := n.Append(ctx, many[:MaxAppendEvents], nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(MaxAppendEvents), last)
	assert.Equal(t, uint64(MaxAppendEvents), streamState(t, jsFor(t, url), stream).State.LastSeq, "only the append within the limits reached the stream")
}

// TestUnreachableNATS: with no server at the address, Open fails naming
// it, and the node's directory is not created.
func TestUnreachableNATS(t *testing.T) {
	port := freePorts(t, 1)[0]
	dir := filepath.Join(t.TempDir(), "node")
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	// Open waits StartWait for servers that may be starting, then says
	// what it could not reach.
	_, err := Open(t.Context(), dir, &Options{URL: url, Stream: "S", StartWait: 500 * time.Millisecond})
	require.Error(t, err)
	assert.Contains(t, err.Error(), url)
	assert.True(t, errors.Is(err, nats.ErrNoServers), "%v", err)
	_, statErr := os.Stat(dir)
	assert.ErrorIs(t, statErr, os.ErrNotExist)
}

// TestBadOptions: options are checked before anything is dialled or
// written.
func TestBadOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node")
	for name, o := range map[string]*Options{
		"nil":             nil,
		"no stream":       {URL: "nats://127.0.0.1:1"},
		"a dotted stream": {URL: "nats://127.0.0.1:1", Stream: "a.b"},
		"no url":          {Stream: "S"},
		"wildcard prefix": {URL: "nats://127.0.0.1:1", Stream: "S", Subject: "a.*"},
		"empty token":     {URL: "nats://127.0.0.1:1", Stream: "S", Subject: "a..b"},
		"six replicas":    {URL: "nats://127.0.0.1:1", Stream: "S", Replicas: 6},
	} {
		_, err := Open(t.Context(), dir, o)
		assert.ErrorContains(t, err, "cluster: ", name)
	}
	assert.NoDirExists(t, dir)
}

// TestReplicaOfAnotherStreamRefused: a node's directory holds the replica
// of one stream; opened on another stream (or on one that holds fewer
// events), it is refused before anything is applied.
func TestReplicaOfAnotherStreamRefused(t *testing.T) {
	url := sharedSingle(t)
	dir := t.TempDir()
	a, b := newStreamName(), newStreamName()
	n := openNode(t, url, a, dir, 0)
	_, err := n.Append(t.Context(), []dcb.Event{{Type: "A"}, {Type: "B"}}, nil)
	require.NoError(t, err)
	require.NoError(t, n.Close())

	other := openNode(t, url, b, t.TempDir(), 0)
	_, err = other.Append(t.Context(), []dcb.Event{{Type: "A"}}, nil)
	require.NoError(t, err)
	err = openErr(t, url, b, dir, 0)
	require.ErrorContains(t, err, "holds 2 events, the stream \""+b+"\" only 1")
	_, err = other.Append(t.Context(), []dcb.Event{{Type: "X"}}, nil)
	require.NoError(t, err)
	require.ErrorContains(t, openErr(t, url, b, dir, 0), "not a replica of this stream: position 2 differs in its type")

	// Its own stream still takes it.
	n = openNode(t, url, a, dir, 0)
	assert.Equal(t, uint64(2), n.Head())
}

// TestStreamDeletedUnderANode: a stream deleted while a node runs makes
// its appends fail, saying so, rather than wait for ever; reads still
// serve the replica.
func TestStreamDeletedUnderANode(t *testing.T) {
	url := sharedSingle(t)
	stream := newStreamName()
	n := openNode(t, url, stream, t.TempDir(), 0)
	ctx := t.Context()
	_, err := n.Append(ctx, []dcb.Event{{Type: "A"}}, nil)
	require.NoError(t, err)
	require.NoError(t, jsFor(t, url).DeleteStream(ctx, stream))
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = n.Append(actx, []dcb.Event{{Type: "B"}}, nil)
	require.Error(t, err)
	assert.NoError(t, actx.Err(), "the append failed by itself: %v", err)
	assert.ErrorIs(t, err, jetstream.ErrStreamNotFound)
	assert.Len(t, readAll(t, n), 1)
}
