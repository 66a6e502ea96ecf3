package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVerifyServedStore: possum verify and possum recover --dry-run check a
// store that `possum serve` holds while clients append through it: exit 0,
// saying they ran beside its writer (naming it) and up to which position,
// never past what it acknowledged. possum recover itself is refused, naming
// the process and what to do. Damage planted in the acknowledged part is
// found (exit 1).
func TestVerifyServedStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	serve, _ := startServe(t, dir)
	c, err := client.Dial(dir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			_, err := c.Append(ctx, []dcb.Event{{Type: "Tick", Tags: []string{fmt.Sprint("i:", i%7)}, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))}}, nil)
			if err != nil && ctx.Err() == nil {
				t.Errorf("append: %v", err)
				return
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	f, err := store.Follow(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	// appended waits until the store holds more than pos events.
	appended := func(pos uint64) uint64 {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			head, err := f.HeadContext(t.Context())
			require.NoError(t, err)
			if head > pos {
				return head
			}
			require.True(t, time.Now().Before(deadline), "no append acknowledged after %d", pos)
			time.Sleep(time.Millisecond) // polling a position
		}
	}

	pid := fmt.Sprintf("(pid %d)", serve.Process.Pid)
	head := uint64(0)
	for round := range 3 {
		before := appended(head)
		code, out, errOut := runCmd("verify", dir)
		require.Equal(t, 0, code, "round %d: %s%s", round, out, errOut)
		assert.Contains(t, out, "consistent up to position")
		assert.Contains(t, out, "beside the writer that has it open")
		if runtime.GOOS == "linux" {
			assert.Contains(t, out, pid)
		}
		rep, _ := runJSON(t, 0, "verify", "--json", dir)
		assert.True(t, rep.BesideWriter)
		assert.GreaterOrEqual(t, rep.Head, before)
		head, err = f.HeadContext(t.Context())
		require.NoError(t, err)
		assert.LessOrEqual(t, rep.Head, head, "never past what the writer acknowledged")

		code, out, errOut = runCmd("recover", "--dry-run", dir)
		require.Equal(t, 0, code, "round %d: %s%s", round, out, errOut)
		assert.Contains(t, out, "beside the writer")
	}

	code, out, errOut := runCmd("recover", dir)
	assert.Equal(t, 2, code, out)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "a repair needs the store closed")
	assert.Contains(t, errOut, "possum verify "+dir)
	if runtime.GOOS == "linux" {
		assert.Contains(t, errOut, pid)
	}
	assert.NotContains(t, errOut, "possum recover: possum")

	// Damage the served store where its writer no longer writes.
	first := storedir.EventPath(dir, 1)
	deadline := time.Now().Add(time.Minute)
	for _, err := os.Stat(first); err != nil; _, err = os.Stat(first) {
		require.True(t, time.Now().Before(deadline), "position 1 never projected")
		time.Sleep(time.Millisecond) // polling the projection
	}
	b, err := os.ReadFile(first)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(first, []byte(strings.Replace(string(b), "Tick", "Tock", 1)), 0o640))
	appended(head)
	rep, _ := runJSON(t, 1, "verify", "--json", dir)
	assert.True(t, rep.BesideWriter)
	assert.Equal(t, 1, rep.Counts[recovery.EventDiffers], "%+v", rep.Problems)
	code, out, errOut = runCmd("recover", "--dry-run", dir)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "rewrite 1 event files")
	assert.Contains(t, errOut, "a repair needs it closed")
}
