package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statsJSON runs possum stats --json on dir.
func statsJSON(t *testing.T, dir string, args ...string) storeStats {
	t.Helper()
	r := possum(t, "", append([]string{"stats", dir, "--json"}, args...)...)
	require.Equal(t, 0, r.code, r)
	var st storeStats
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &st), r.stdout)
	return st
}

func TestStats(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	readStore(t, dir, 40) // types T0..T2, tags k:0..k:3 and all
	before := testdir.Hash(t, dir)

	st := statsJSON(t, dir)
	assert.Equal(t, uint64(40), st.Head)
	assert.Equal(t, uint64(40), st.Checkpointed)
	if runtime.GOOS == "linux" {
		assert.Equal(t, writerInfo{State: "none"}, st.Writer)
		require.NotNil(t, st.Projected)
		assert.Equal(t, uint64(40), *st.Projected)
		require.NotNil(t, st.Lag)
		assert.Equal(t, uint64(0), *st.Lag)
	}
	assert.Equal(t, []count{{"T0", 14}, {"T1", 13}, {"T2", 13}}, st.Types)
	assert.Equal(t, 5, st.Tags)
	assert.Equal(t, []count{{"all", 40}, {"k:0", 10}, {"k:1", 10}, {"k:2", 10}, {"k:3", 10}}, st.TopTags)
	assert.Equal(t, 40, st.Disk.EventFiles.Files)
	assert.Equal(t, 3+5, st.Disk.IndexFiles.Files-1, "an index file per type and tag, and the index snapshot")
	assert.Positive(t, st.Disk.WAL.Bytes)
	if runtime.GOOS != "windows" {
		require.NotNil(t, st.Disk.EventFiles.Allocated)
		assert.GreaterOrEqual(t, *st.Disk.EventFiles.Allocated, st.Disk.EventFiles.Bytes)
	}

	assert.Equal(t, []count{{"all", 40}, {"k:0", 10}}, statsJSON(t, dir, "--top", "2").TopTags)

	r := possum(t, "", "stats", "--top", "3", dir)
	require.Equal(t, 0, r.code, r)
	for _, line := range []string{
		"store " + dir + "\n",
		"  head           40\n",
		"  checkpointed   40\n",
		"events by type (3):\n  T0             14\n  T1             13\n  T2             13\n",
		"most used tags (3 of 5):\n  all            40\n  k:0            10\n  k:1            10\nlost positions: none\non disk:\n",
		"  event files    40 files, ",
	} {
		assert.Contains(t, r.stdout, line)
	}
	assert.Equal(t, before, testdir.Hash(t, dir), "stats changed the store")

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"stats"}, "want exactly 1 argument"},
		{[]string{"stats", dir, "--top", "-1"}, "--top -1"},
		{[]string{"stats", dir, "--json=x"}, `invalid value "x" for --json: want true or false`},
		{[]string{"stats", filepath.Dir(dir)}, "is not a possum store"},
	} {
		r := possum(t, "", c.args...)
		assert.Equal(t, 2, r.code, "%q: %s", c.args, r)
		assert.Empty(t, r.stdout, "%q", c.args)
		assert.Contains(t, r.stderr, c.msg, "%q", c.args)
	}
}

// jsonKeys returns every object key in the JSON document b, nested ones
// too, but for the keys of the maps named in skip (their keys are data:
// problem kinds).
func jsonKeys(t *testing.T, b []byte, skip ...string) []string {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal(b, &doc), "%s", b)
	var keys []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				keys = append(keys, k)
				if !slices.Contains(skip, k) {
					walk(e)
				}
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	return keys
}

// stats --json and verify --json name their fields in camelCase, as the
// HTTP API does, and stats names the facts GET /head reports as it does.
func TestJSONNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	startServe(t, dir)
	c, err := client.Dial(dir)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Append(t.Context(), []dcb.Event{{Type: "A", Tags: []string{"t"}}}, nil)
	require.NoError(t, err)

	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", storedir.SocketPath(dir))
	}}}
	res, err := hc.Get("http://possum/head")
	require.NoError(t, err)
	head, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	headKeys := jsonKeys(t, head)

	r := possum(t, "", "stats", "--json", dir)
	require.Equal(t, 0, r.code, r)
	statsKeys := jsonKeys(t, []byte(r.stdout))
	// The store's facts GET /head reports (it reports the server's too).
	for _, k := range []string{"head", "projected", "checkpointed", "lag", "maxLag"} {
		assert.Contains(t, headKeys, k, "%s", head)
		assert.Contains(t, statsKeys, k, "GET /head says %s; stats --json must too", k)
	}
	code, out, errOut := runCmd("verify", "--json", dir)
	require.Equal(t, 0, code, errOut)
	verifyKeys := jsonKeys(t, []byte(out), "counts")
	for _, k := range append(statsKeys, verifyKeys...) {
		assert.Regexp(t, `^[a-z][a-zA-Z0-9]*$`, k, "camelCase")
	}
	assert.Contains(t, statsKeys, "lagAtMost")
	assert.Contains(t, verifyKeys, "besideWriter")
}
