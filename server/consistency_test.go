package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deciderEnv asks for a decider child: "DIR ID DECISIONS".
const deciderEnv = "POSSUM_SERVER_TEST_DECIDER"

func init() { child.Register(deciderEnv, runDecider) }

// counters is how many tags the deciders contend for: few, so that their
// conditions collide often.
const counters = 3

// decision is what a decider records in the data of the event it appends:
// how many events of its tag it saw, and the last position among them (the
// After of its condition).
type decision struct {
	Decider int    `json:"decider"`
	Seen    int    `json:"seen"`
	After   uint64 `json:"after"`
}

func counterQuery(tag string) dcb.Query {
	return dcb.Query{Items: []dcb.QueryItem{{Tags: []string{tag}}}}
}

// runDecider is a child process: it makes DECISIONS decisions through the
// server of DIR, each one a read of its tag's events and an append under
// the condition that none was added since, retried when the condition
// fails. It prints "ack POSITION" for each acknowledged append and
// "conflicts N" at the end.
func runDecider(arg string) {
	var dir string
	var id, decisions int
	if _, err := fmt.Sscan(arg, &dir, &id, &decisions); err != nil {
		fmt.Fprintln(os.Stderr, "decider:", err)
		os.Exit(2)
	}
	c, err := client.Dial(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "decider:", err)
		os.Exit(2)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := bufio.NewWriter(os.Stdout)
	conflicts := 0
	for i := range decisions {
		tag := fmt.Sprintf("counter:%d", (id+i)%counters)
		q := counterQuery(tag)
		for {
			d := decision{Decider: id}
			for e, err := range c.Read(ctx, q, store.ReadOptions{}) {
				if err != nil {
					fmt.Fprintln(os.Stderr, "decider: read:", err)
					os.Exit(1)
				}
				d.Seen++
				d.After = e.Position
			}
			data, _ := json.Marshal(d)
			pos, err := c.Append(ctx, []dcb.Event{{Type: "Counted", Tags: []string{tag}, Data: data}},
				&dcb.AppendCondition{FailIfEventsMatch: q, After: d.After})
			if errors.Is(err, dcb.ErrAppendConditionFailed) {
				conflicts++
				continue // decide again on what is there now
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "decider: append:", err)
				os.Exit(1)
			}
			fmt.Fprintf(out, "ack %d\n", pos)
			break
		}
	}
	fmt.Fprintf(out, "conflicts %d\n", conflicts)
	out.Flush()
}

// TestConsistencyAcrossProcesses: 20 processes decide concurrently through
// the server, each reading its tag's events and appending under the
// condition that none was added since (the DCB consistency check). Every
// event's recorded decision must match what the events before it show:
// no condition was violated, and every acknowledged append is there.
func TestConsistencyAcrossProcesses(t *testing.T) {
	const processes, decisions = 20, 8
	s := serve(t, nil)
	var wg sync.WaitGroup
	acks := make([][]uint64, processes)
	conflicts := make([]int, processes)
	for id := range processes {
		wg.Go(func() {
			cmd := child.Command(deciderEnv, fmt.Sprintf("%s %d %d", s.dir, id, decisions))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if !assert.NoError(t, err, "decider %d: %s", id, stderr.String()) {
				return
			}
			for line := range strings.Lines(string(out)) {
				word, n, _ := strings.Cut(strings.TrimSpace(line), " ")
				v, err := strconv.ParseUint(n, 10, 64)
				if !assert.NoError(t, err, line) {
					return
				}
				switch word {
				case "ack":
					acks[id] = append(acks[id], v)
				case "conflicts":
					conflicts[id] = int(v)
				}
			}
		})
	}
	wg.Wait()
	require.False(t, t.Failed())

	events, err := collect(s.st.Read(t.Context(), dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	require.Len(t, events, processes*decisions)
	acked := map[uint64]int{}
	total := 0
	for id, ps := range acks {
		assert.Len(t, ps, decisions, "decider %d", id)
		for _, p := range ps {
			acked[p] = id
		}
		total += conflicts[id]
	}
	before := map[string][]uint64{} // the positions of each tag so far
	for _, e := range events {
		var d decision
		require.NoError(t, json.Unmarshal(e.Data, &d))
		id, ok := acked[e.Position]
		assert.True(t, ok, "position %d was acknowledged", e.Position)
		assert.Equal(t, id, d.Decider, "position %d acknowledged to its decider", e.Position)
		tag := e.Tags[0]
		prior := before[tag]
		var last uint64
		if len(prior) > 0 {
			last = prior[len(prior)-1]
		}
		assert.Equal(t, len(prior), d.Seen, "position %d: its decision saw every earlier event of %s, and only those", e.Position, tag)
		assert.Equal(t, last, d.After, "position %d: nothing of %s came between its read and its append", e.Position, tag)
		before[tag] = append(prior, e.Position)
	}
	t.Logf("%d decisions by %d processes, %d conditions failed and were decided again", len(events), processes, total)
}
