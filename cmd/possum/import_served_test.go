package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestImportFitsTheServersLimit: an NDJSON import through a serving
// process sizes its batches to fit the server's request limit (which the
// client learns from it), where one batch of --batch lines would not; a
// line too large to fit alone stops the import there, with the server's
// reason.
func TestImportFitsTheServersLimit(t *testing.T) {
	const limit = 256 << 10
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(dir, nil)
	require.NoError(t, err)
	l, err := server.ListenSocket(st)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- server.New(st, &server.Options{MaxBodyBytes: limit}).Serve(ctx, l) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, st.Close())
	}()

	// 1,000 lines of about 1 KiB: 1 MiB, four times the limit, in one
	// batch of --batch 1000.
	var in strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&in, `{"type":"Imported","tags":["n:%d"],"data":{"pad":"%s"}}`+"\n", i+1, strings.Repeat("x", 1000))
	}
	r := runImportOf(t, dir, in.String())
	require.NoError(t, r.err, "stderr: %s", r.stderr)
	assert.Contains(t, r.stdout, "appended 1000 events in ")
	assert.NotContains(t, r.stdout, "in 1 batch,", "more batches than --batch asks for")
	require.Equal(t, uint64(1000), st.Head())
	evs, err := collectEvents(st.Read(t.Context(), dcb.Query{Items: []dcb.QueryItem{{Tags: []string{"n:1000"}}}}, store.ReadOptions{}))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, uint64(1000), evs[0].Position, "in order")

	// A line that cannot fit alone: the lines before it are appended.
	r = runImportOf(t, dir, `{"type":"Small"}`+"\n"+`{"type":"Big","data":"`+strings.Repeat("x", limit)+`"}`+"\n"+`{"type":"After"}`+"\n")
	require.Error(t, r.err)
	assert.Contains(t, r.stderr, "appending lines 2..2")
	assert.Contains(t, r.stderr, "over the limit of 256 KiB")
	assert.Contains(t, r.stderr, "lines 1..1 were appended")
	assert.Equal(t, uint64(1001), st.Head())
}

type importRun struct {
	stdout, stderr string
	err            error
}

// runImportOf runs the import of possum append in this process, on ndjson
// as its standard input.
func runImportOf(t *testing.T, dir, ndjson string) importRun {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "in.ndjson"))
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteString(ndjson)
	require.NoError(t, err)
	_, err = f.Seek(0, 0)
	require.NoError(t, err)
	var out, errOut bytes.Buffer
	err = runImport(dir, f, defaultBatch, &out, &errOut)
	return importRun{out.String(), errOut.String(), err}
}
