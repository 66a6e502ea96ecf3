package storedir_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/internal/sys/vfs"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLostFile: RecordLoss appends one JSON line per loss, in UTC; a line
// torn by a crash (no newline) is ignored by ReadLosses and cut by the
// next RecordLoss; a damaged line in the middle is an error naming it;
// LostRanges merges the ranges of every line in order.
func TestLostFile(t *testing.T) {
	dir := t.TempDir()
	losses, err := storedir.ReadLosses(dir)
	require.NoError(t, err)
	assert.Empty(t, losses, "no file: no loss")

	at := time.Date(2026, 12, 4, 21, 0, 0, 5, time.FixedZone("x", 3600))
	require.NoError(t, storedir.RecordLoss(vfs.OS, dir, storedir.Loss{Time: at, Lost: []storedir.Range{{From: 7, To: 9}}, Events: 3, Why: "damage", Broken: []string{"wal/1.broken.x"}}))
	path := filepath.Join(dir, storedir.LostFile)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, `{"time":"2026-12-04T20:00:00.000000005Z","lost":[{"from":7,"to":9}],"events":3,"why":"damage","broken":["wal/1.broken.x"]}`+"\n", string(b))

	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"time":"2026-12-04T20:00:00Z","lo`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	losses, err = storedir.ReadLosses(dir)
	require.NoError(t, err)
	require.Len(t, losses, 1, "a torn last line was never recorded")

	require.NoError(t, storedir.RecordLoss(vfs.OS, dir, storedir.Loss{Lost: []storedir.Range{{From: 1, To: 1}, {From: 10, To: 12}}, Events: 4, Why: "copy"}))
	losses, err = storedir.ReadLosses(dir)
	require.NoError(t, err)
	require.Len(t, losses, 2, "the torn line was cut")
	assert.Equal(t, "copy", losses[1].Why)
	assert.Equal(t, time.UTC, losses[1].Time.Location())
	assert.Equal(t, []storedir.Range{{From: 1, To: 1}, {From: 7, To: 12}}, storedir.LostRanges(losses))
	assert.Equal(t, "1, 7..12", storedir.FormatRanges(storedir.LostRanges(losses)))

	b, err = os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append([]byte("not json\n"), b...), 0o640))
	_, err = storedir.ReadLosses(dir)
	assert.ErrorContains(t, err, "LOST line 1")
}
