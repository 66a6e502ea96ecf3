package store_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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

// TestFollowFilesFromNode runs docs/examples/follow.mjs, the example of
// docs/FORMAT.md, against a store being written: started before the store
// exists, it must print every event once, in order, equal to what Read
// returns. Skipped when node is missing.
func TestFollowFilesFromNode(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the cross-language follower example is not run")
	}
	script := filepath.Join("..", "docs", "examples", "follow.mjs")
	src, err := os.ReadFile(script)
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "FORMAT.md"))
	require.NoError(t, err)
	assert.Contains(t, string(doc), string(src), "docs/FORMAT.md shows follow.mjs as it is")

	dir := filepath.Join(t.TempDir(), "store")
	const n = 1500
	cmd := exec.Command(node, script, dir, "1", fmt.Sprint(n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	watchdog := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()

	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	for i, size := 0, 1; i < n; i, size = i+size, size%37+1 {
		batch := make([]dcb.Event, 0, size)
		for j := i; j < min(n, i+size); j++ {
			batch = append(batch, dcb.Event{Type: "Followed", Tags: []string{fmt.Sprint("j:", j)},
				Data: json.RawMessage(fmt.Sprintf(`{"j":%d,"s":"\u00e9\"\\"}`, j)), Metadata: map[string]string{"by": "test"}})
		}
		_, err := s.Append(t.Context(), batch, nil)
		require.NoError(t, err)
	}
	want := readAll(t, s, dcb.All(), store.ReadOptions{})

	var got []dcb.SequencedEvent
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		e, err := storedir.DecodeEvent(sc.Bytes())
		require.NoError(t, err, "line %q", sc.Text())
		got = append(got, e)
	}
	werr := cmd.Wait()
	require.NoError(t, werr, "node: %s", stderr.String())
	require.Len(t, got, n, "stderr: %s", strings.TrimSpace(stderr.String()))
	for i := range want {
		require.JSONEq(t, string(want[i].Data), string(got[i].Data), "position %d", i+1)
		got[i].Data = want[i].Data
		require.Equal(t, want[i], got[i], "position %d", i+1)
	}
}
