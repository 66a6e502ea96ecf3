package main

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/possumstore/possum/internal/testdir"
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
		"most used tags (3 of 5):\n  all            40\n  k:0            10\n  k:1            10\non disk:\n",
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
		{[]string{"stats", dir, "--json=x"}, "invalid boolean value"},
		{[]string{"stats", filepath.Dir(dir)}, "is not a possum store"},
	} {
		r := possum(t, "", c.args...)
		assert.Equal(t, 2, r.code, "%q: %s", c.args, r)
		assert.Empty(t, r.stdout, "%q", c.args)
		assert.Contains(t, r.stderr, c.msg, "%q", c.args)
	}
}
