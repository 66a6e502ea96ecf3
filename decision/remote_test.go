package decision_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/decision"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Go client of a served store is a store.EventStore.
var _ store.EventStore = (*client.Client)(nil)

// TestBuildHonoursContextRemotely: Build against a client whose server
// stopped answering (it took the connection, and says nothing) returns
// once its context ends, with the error of the head it could not learn,
// however long the client's own timeout.
func TestBuildHonoursContextRemotely(t *testing.T) {
	var answered atomic.Bool
	hung := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/head" && answered.CompareAndSwap(false, true) {
			_, _ = io.WriteString(w, `{"head":3}`) // Dial's check
			return
		}
		select { // then nothing
		case <-hung:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	defer close(hung)
	c, err := client.DialOptions(ts.URL, &client.Options{Timeout: time.Hour})
	require.NoError(t, err)
	defer c.Close()

	var m decision.Model
	decision.Add(&m, positions(tagged("x")))
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := m.Build(ctx, c)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(time.Minute): // a guard against a hang, not a measure
		t.Fatal("Build did not return long after its context ended")
	}
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "head", "the head it could not learn")
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded, "Build returned because its context ended")
}
