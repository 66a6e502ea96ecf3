package server_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/require"
)

// TestMain runs the test binary as the child process a parent test asked
// for (see package child), and the tests otherwise.
func TestMain(m *testing.M) { child.Main(m) }

// served is a store served on its socket for the length of a test.
type served struct {
	dir string
	st  *store.Store
	srv *server.Server
	hc  *http.Client // for httpRead, made on first use
}

// serve opens a store in a fresh directory and serves it on its socket
// with opts until the test ends.
func serve(t testing.TB, opts *server.Options) *served {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s")
	st, err := store.Open(dir, nil)
	require.NoError(t, err)
	return serveStore(t, st, opts)
}

// serveStore serves st on its socket until the test ends, then closes it.
func serveStore(t testing.TB, st *store.Store, opts *server.Options) *served {
	t.Helper()
	return serveAs(t, st, server.New(st, opts))
}

// serveAs serves srv on the socket of st until the test ends, then closes
// st; srv may serve another Store than st (a fake).
func serveAs(t testing.TB, st *store.Store, srv *server.Server) *served {
	t.Helper()
	l, err := server.ListenSocket(st)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, st.Close())
	})
	return &served{dir: st.Dir(), st: st, srv: srv}
}

// serveTCP opens a store in a fresh directory and serves it on a loopback
// TCP port with opts until the test ends; it returns the store and the
// port's address.
func serveTCP(t testing.TB, opts *server.Options) (*store.Store, string) {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.New(st, opts).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, st.Close())
	})
	return st, l.Addr().String()
}

// dial returns a client of the served store, closed when the test ends.
func (s *served) dial(t testing.TB, opts *client.Options) *client.Client {
	t.Helper()
	c, err := client.DialOptions(s.dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// collect reads a sequence to its end; the error is that of the last pair.
func collect[E any](seq func(func(E, error) bool)) ([]E, error) {
	var out []E
	for e, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// testWait bounds the waits of require.Eventually: generous, never a
// measure.
const (
	testWait  = 20 * time.Second
	pollEvery = 5 * time.Millisecond
)
