package cluster

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadStreamFromNode runs docs/examples/cluster-read.mjs, the example
// of docs/FORMAT.md, on a stream a node wrote events of awkward types,
// tags, metadata and data to: it must print every event, in order, equal
// to what the node's Read returns. Skipped when node is missing.
func TestReadStreamFromNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the cross-language reader example is not run")
	}
	script := filepath.Join("..", "docs", "examples", "cluster-read.mjs")
	src, err := os.ReadFile(script)
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "FORMAT.md"))
	require.NoError(t, err)
	assert.Contains(t, string(doc), string(src), "docs/FORMAT.md shows cluster-read.mjs as it is")

	url := sharedSingle(t)
	stream := newStreamName()
	n := openNode(t, url, stream, t.TempDir(), 0)
	for i, batch := range [][]dcb.Event{
		{{Type: "CourseDefined", Tags: []string{"course:c1"}, Data: []byte(`{"capacity":2}`), ID: "c1 ü",
			Timestamp: time.Date(2020, 2, 29, 23, 59, 59, 1, time.UTC)}},
		{{Type: "Course.Renamed 😀", Tags: []string{"a,b\nc", "ü", `"q"`}, Metadata: map[string]string{"by": "ann", "ключ": "line\r\nbreak"}},
			{Type: "%41", Data: []byte(`[1,"\u00e9\\"]`)}},
	} {
		_, err := n.Append(t.Context(), batch, nil)
		require.NoError(t, err, "append %d", i)
	}
	// Lost positions' markers, one of known type and one unknown, pushed
	// after the node's events from a store that holds them.
	seed, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer seed.Close()
	for e, err := range n.Read(t.Context(), dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		_, err = seed.Append(t.Context(), []dcb.Event{e.Event}, nil)
		require.NoError(t, err)
	}
	_, err = seed.AppendLost(t.Context(), seed.Head(), []dcb.Event{{Type: "Paid ü", Tags: []string{"o:1"}}, {}}, "")
	require.NoError(t, err)
	_, err = Push(t.Context(), seed, &Options{URL: url, Stream: stream})
	require.NoError(t, err)
	_, err = n.CatchUp(t.Context())
	require.NoError(t, err)
	want := readAll(t, n)
	require.True(t, want[len(want)-1].Lost, "the markers reached the node")

	cmd := exec.Command(node, script, strings.TrimPrefix(url, "nats://"), stream)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	watchdog := time.AfterFunc(time.Minute, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var got []map[string]any
	for line := range strings.Lines(string(out)) {
		var e map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		got = append(got, e)
	}
	require.Len(t, got, len(want))
	for i, w := range want {
		g := got[i]
		if w.Lost {
			// A marker: the keys of its event file, and nothing else.
			var file map[string]any
			require.NoError(t, json.Unmarshal(storedir.AppendEvent(nil, w, true), &file))
			assert.Equal(t, file, g, "position %d, a lost position", w.Position)
			continue
		}
		assert.EqualValues(t, w.Position, g["position"])
		assert.Equal(t, w.Type, g["type"])
		tags := []any{}
		for _, tag := range w.Tags {
			tags = append(tags, tag)
		}
		assert.Equal(t, tags, g["tags"])
		md := map[string]any{}
		for k, v := range w.Metadata {
			md[k] = v
		}
		assert.Equal(t, md, g["metadata"])
		data, _ := json.Marshal(g["data"])
		if w.Data == nil {
			assert.Nil(t, g["data"])
		} else {
			assert.JSONEq(t, string(w.Data), string(data))
		}
		ts, err := time.Parse(time.RFC3339Nano, g["timestamp"].(string))
		require.NoError(t, err)
		assert.True(t, w.Timestamp.Equal(ts), "position %d: the replica's time, the stream's", i+1)
		if w.ID == "" {
			assert.NotContains(t, g, "id")
		} else {
			assert.Equal(t, w.ID, g["id"])
		}
	}
}
