package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadsRacingConcurrentClose: readers in other goroutines, mid-read,
// when Close runs: each read yields exact events, then either ends whole or
// ends with ErrClosed; none sees a fault, another error or a wrong byte
// (reads go through memory mappings that Close unmaps).
func TestReadsRacingConcurrentClose(t *testing.T) {
	ctx := context.Background()
	const events = 300
	dir := t.TempDir()
	s := open(t, dir)
	for i := 0; i < events; i += 10 {
		batch := make([]dcb.Event, 10)
		for j := range batch {
			p := i + j + 1
			batch[j] = dcb.Event{Type: fmt.Sprintf("T%d", p%3), Tags: []string{"all", fmt.Sprintf("n:%d", p)},
				Data: json.RawMessage(fmt.Sprintf(`{"p":%d}`, p))}
		}
		appendOK(t, s, batch...)
	}
	check := func(e dcb.SequencedEvent) bool {
		p := e.Position
		return assert.Equal(t, fmt.Sprintf("T%d", p%3), e.Type) &&
			assert.Equal(t, []string{"all", fmt.Sprintf("n:%d", p)}, e.Tags) &&
			assert.JSONEq(t, fmt.Sprintf(`{"p":%d}`, p), string(e.Data))
	}
	queries := []dcb.Query{dcb.All(), tagQuery("all"), query(item([]string{"T1"}))}
	const readers = 4
	var reading, wg sync.WaitGroup
	reading.Add(readers)
	for g := range readers {
		wg.Go(func() {
			signalled := false
			for i := 0; ; i++ {
				q := queries[(g+i)%len(queries)]
				o := store.ReadOptions{Backwards: i%2 == 1}
				n := 0
				for e, err := range s.Read(ctx, q, o) {
					if err != nil {
						assert.ErrorIs(t, err, store.ErrClosed)
						if !signalled {
							reading.Done()
						}
						return
					}
					if !check(e) {
						return
					}
					if n++; n == 20 && !signalled {
						signalled = true
						reading.Done()
					}
				}
			}
		})
	}
	reading.Wait() // every reader is mid-read or has read
	require.NoError(t, s.Close())
	wg.Wait()
}

// TestReadFindsDamageUnderOpenStore: a byte of an event damaged in the WAL
// while the store is open and its segment already read (so mapped) is
// found by the next read of that event: ErrCorrupt, never the damaged byte.
func TestReadFindsDamageUnderOpenStore(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir())
	defer s.Close()
	appendOK(t, s, ev("A", "x"), dcb.Event{Type: "B", Tags: []string{"y"}, Data: json.RawMessage(`"damage me"`)})
	appendOK(t, s, ev("C", "z"))
	require.Len(t, readAll(t, s, dcb.All(), store.ReadOptions{}), 3)

	seg := walSegmentPaths(t, s.Dir())[0]
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	at := bytes.Index(b, []byte("damage me"))
	require.Positive(t, at)
	f, err := os.OpenFile(seg, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{'D'}, int64(at)) // in place: the file keeps its size
	require.NoError(t, err)
	require.NoError(t, f.Close())

	_, err = read(s, ctx, tagQuery("y"), store.ReadOptions{})
	require.ErrorIs(t, err, store.ErrCorrupt)
	got := readAll(t, s, query(item([]string{"A", "C"})), store.ReadOptions{})
	require.Len(t, got, 2, "the other events of the record and the log read on")
}
