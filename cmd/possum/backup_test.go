package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBackupCommand: possum backup copies a store served by another
// process while it appends, verify passes on the copy, reading the copy
// gives the source's events up to its head byte for byte; a second backup
// copies what is new; a DEST holding anything else is refused (exit 2,
// nothing changed).
func TestBackupCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	readStore(t, dir, 30)
	startServe(t, dir)
	c, err := client.Dial(dir)
	require.NoError(t, err)
	defer c.Close()
	dest := filepath.Join(t.TempDir(), "backup")

	r := possum(t, "", "backup", dir, dest, "--json")
	require.Equal(t, 0, r.code, r)
	var rep backupReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Equal(t, uint64(30), rep.Head)
	assert.Positive(t, rep.Bytes)
	r = possum(t, "", "verify", dest)
	require.Equal(t, 0, r.code, "verify of the backup: %s", r)

	for i := range 5 {
		_, err := c.Append(t.Context(), []dcb.Event{tailEvent(30 + i)}, nil)
		require.NoError(t, err)
	}
	r = possum(t, "", "backup", dir, dest)
	require.Equal(t, 0, r.code, r)
	assert.Regexp(t, `^backed up .* into .*: positions 1\.\.35 \(35 records in 1 segment\), .* copied in `, r.stdout)
	src := possum(t, "", "read", dir)
	cp := possum(t, "", "read", dest)
	require.Equal(t, 0, cp.code, cp)
	assert.Equal(t, src.stdout, cp.stdout, "the copy reads as the store, byte for byte")

	foreign := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(foreign, "x"), []byte("x"), 0o640))
	before := testdir.Hash(t, foreign)
	r = possum(t, "", "backup", dir, foreign)
	assert.Equal(t, 2, r.code, r)
	assert.Contains(t, r.stderr, "no store")
	assert.Equal(t, before, testdir.Hash(t, foreign))
}
