package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
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

// TestOneEncoding: an event's event file, its line of possum read, its
// element of GET /read and its line of GET /stream are the same bytes
// (one encoder: storedir.AppendEvent), strings escaped alike (<, >, &,
// U+2028); data written over several lines is the one difference: a line
// carries it compacted, and byte for byte as rawData.
func TestOneEncoding(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	events := []dcb.Event{
		{Type: "<script>&", Tags: []string{"a\u2028b", "é🦘", `q"uote\`}, Data: json.RawMessage(`{"html":"<b>&amp;</b>","sep":"\u2029"}`),
			Metadata: map[string]string{"<k>": "v&\t"}, ID: "id<1>", Timestamp: time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)},
		{Type: "Plain"},
		{Type: "Lines", Data: json.RawMessage("{\n  \"a\": [1,\n 2]\n}")},
	}
	last, err := s.Append(t.Context(), events, nil)
	require.NoError(t, err)
	require.NoError(t, s.WaitProjected(t.Context(), last))
	require.NoError(t, s.Close())

	files := make([]string, len(events))
	for i := range events {
		b, err := os.ReadFile(storedir.EventPath(dir, uint64(i+1)))
		require.NoError(t, err)
		files[i] = strings.TrimSuffix(string(b), "\n")
	}
	ndjson := possum(t, "", "read", dir)
	require.Equal(t, 0, ndjson.code, ndjson)
	lines := strings.Split(strings.TrimSuffix(ndjson.stdout, "\n"), "\n")
	require.Len(t, lines, len(events))

	startServe(t, dir)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", storedir.SocketPath(dir))
	}}}
	get := func(path string) []byte {
		resp, err := hc.Get("http://possum" + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return b
	}
	var array []json.RawMessage
	require.NoError(t, json.Unmarshal(get("/read"), &array))
	require.Len(t, array, len(events))
	var stream []string
	sc := bufio.NewScanner(strings.NewReader(string(get("/stream"))))
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, `{"end"`) {
			stream = append(stream, line)
		}
	}
	require.Len(t, stream, len(events))

	for i := range events {
		assert.Equal(t, files[i], string(array[i]), "event %d: GET /read is the event file", i+1)
		assert.Equal(t, lines[i], stream[i], "event %d: GET /stream is possum read", i+1)
		if i < 2 {
			assert.Equal(t, files[i], lines[i], "event %d: possum read is the event file", i+1)
			continue
		}
		assert.NotEqual(t, files[i], lines[i], "data over several lines: a line compacts it")
		e, err := storedir.DecodeEvent([]byte(lines[i]))
		require.NoError(t, err)
		assert.Equal(t, string(events[i].Data), string(e.Data), "and carries it byte for byte")
	}
	assert.Contains(t, files[0], `"type":"\u003cscript\u003e\u0026"`)
	assert.Contains(t, files[0], `"a\u2028b"`)

	// possum read | possum append copies every event file byte for byte,
	// data over several lines too.
	cp := filepath.Join(t.TempDir(), "copy")
	r := possum(t, ndjson.stdout, "append", cp)
	require.Equal(t, 0, r.code, r)
	for i := range events {
		b, err := os.ReadFile(storedir.EventPath(cp, uint64(i+1)))
		require.NoError(t, err)
		assert.Equal(t, files[i]+"\n", string(b), "event %d of the copy", i+1)
	}
}
