package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appendOnly is a store.EventStore without AppendMany: the server appends the
// items of a POST /appends one by one, concurrently.
type appendOnly struct{ store.EventStore }

// TestAppendsEachOnItsOwn: POST /appends gives each append its own outcome,
// whether the store takes them together (AppendMany, a *store.Store) or the
// server appends them one by one (any other Store).
func TestAppendsEachOnItsOwn(t *testing.T) {
	for name, wrap := range map[string]func(*store.Store) store.EventStore{
		"AppendMany": func(st *store.Store) store.EventStore { return st },
		"one by one": func(st *store.Store) store.EventStore { return appendOnly{st} },
	} {
		t.Run(name, func(t *testing.T) {
			st, err := store.Open(filepath.Join(t.TempDir(), "s"), nil)
			require.NoError(t, err)
			_, err = st.Append(t.Context(), []dcb.Event{{Type: "Seed", Tags: []string{"seed"}}}, nil)
			require.NoError(t, err)
			l, err := server.ListenSocket(st)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- server.New(wrap(st), nil).Serve(ctx, l) }()
			defer func() {
				cancel()
				require.NoError(t, <-done)
				require.NoError(t, st.Close())
			}()
			s := &served{dir: st.Dir(), st: st}

			resp, err := s.rawHTTP().Post("http://possum/appends", "application/json", strings.NewReader(`{"appends":[`+
				`{"events":[{"type":"A"}]},`+
				`{"events":[{"type":"B"}],"condition":{"failIfEventsMatch":{"items":[{"tags":["seed"]}]}}},`+
				`{"events":[{"type":""}]},`+
				`{"events":[{"type":"C"}],"condition":{}},`+
				`{"events":[{"type":"D","tags":["d"]},{"type":"D","tags":["d"]}],"condition":{"failIfEventsMatch":{"items":[{"tags":["d"]}]},"after":1}}]}`))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var res struct {
				Results []struct {
					Position              uint64 `json:"position"`
					AppendConditionFailed bool   `json:"appendConditionFailed"`
					Code                  string `json:"code"`
				} `json:"results"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
			require.Len(t, res.Results, 5)
			r := res.Results
			assert.Empty(t, r[0].Code)
			assert.True(t, r[1].AppendConditionFailed)
			assert.Empty(t, r[1].Code)
			assert.Equal(t, "invalid_event", r[2].Code)
			assert.Equal(t, "invalid_query", r[3].Code, "a condition without failIfEventsMatch")
			assert.Empty(t, r[4].Code)
			// A and the two D, in either order after the seed.
			pos := [2]uint64{r[0].Position, r[4].Position}
			assert.Contains(t, [][2]uint64{{2, 4}, {4, 3}}, pos)
			assert.Equal(t, uint64(4), st.Head())
		})
	}
}
