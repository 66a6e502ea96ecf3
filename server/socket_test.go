package server_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSocket: the socket is in the store directory, only its owner may
// connect, a stale one is replaced, and closing the listener removes it.
func TestSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	st, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer st.Close()
	path := storedir.SocketPath(dir)
	assert.Equal(t, filepath.Join(dir, "possum.sock"), path)

	// A socket file left by a server that was killed: a stale one.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	stale.SetUnlinkOnClose(false)
	require.NoError(t, stale.Close())
	_, err = client.Dial(dir)
	require.Error(t, err, "nobody listens on a stale socket")
	assert.Contains(t, err.Error(), "no possum server at")

	l, err := server.ListenSocket(st)
	require.NoError(t, err)
	assert.Equal(t, path, l.Addr().String(), "the listener names the socket's path")
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&os.ModeSocket)
	if runtime.GOOS != "windows" {
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "only the owner connects")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- server.New(st, nil).Serve(ctx, l) }()
	c, err := client.Dial(dir)
	require.NoError(t, err)
	pos, err := c.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), pos)
	c.Close()
	cancel()
	require.NoError(t, <-done)
	_, err = os.Lstat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "Serve's end closes the listener, which removes the socket")

	// Something else under the socket's name is not removed.
	require.NoError(t, os.WriteFile(path, []byte("mine"), 0o600))
	_, err = server.ListenSocket(st)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a socket")
	require.NoError(t, os.Remove(path))

	// A closed store has no socket.
	require.NoError(t, st.Close())
	_, err = server.ListenSocket(st)
	assert.ErrorIs(t, err, store.ErrClosed)
}

// TestSocketPathTooLong: a store whose socket path is over the platform's
// limit gets an error naming the path and the limit, from the server and
// from the client.
func TestSocketPathTooLong(t *testing.T) {
	base := t.TempDir()
	long := filepath.Join(base, strings.Repeat("d", storedir.MaxSocketPath()-len(base)))
	st, err := store.Open(long, nil)
	require.NoError(t, err)
	defer st.Close()
	_, err = server.ListenSocket(st)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "over the")
	assert.Contains(t, err.Error(), "limit of unix sockets")
	assert.Contains(t, err.Error(), long)
	_, err = client.Dial(long)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "limit of unix sockets")
}

// TestTokenOverTCP: with a token, a request without it, or with another,
// gets 401 and a JSON error; the client with it works.
func TestTokenOverTCP(t *testing.T) {
	st, addr := serveTCP(t, &server.Options{Token: "s3cret"})
	ctx := t.Context()
	url := "http://" + addr

	for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret2", "Basic s3cret", "Bearers3cret"} {
		req, err := http.NewRequest(http.MethodPost, url+"/append", strings.NewReader(`{"events":[{"type":"T"}]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, auth)
		_, code := errorBody(t, resp)
		assert.Equal(t, "unauthorized", code)
		resp.Body.Close()
	}
	_, err := client.DialURL(url, "wrong")
	assert.ErrorContains(t, err, "refused the bearer token")
	assert.NotContains(t, err.Error(), "no possum server", "a server answered: the token is wrong")
	assert.Zero(t, st.Head(), "nothing written without the token")

	// The scheme is case-insensitive (RFC 9110), the token is not.
	for i, auth := range []string{"bearer s3cret", "BEARER s3cret", "Bearer  s3cret"} {
		req, err := http.NewRequest(http.MethodPost, url+"/append", strings.NewReader(`{"events":[{"type":"T"}]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, auth)
		assert.Equal(t, uint64(i+1), st.Head())
	}

	c, err := client.DialURL(url, "s3cret")
	require.NoError(t, err)
	defer c.Close()
	pos, err := c.Append(ctx, []dcb.Event{{Type: "T"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), pos)
	evs, err := collect(c.Read(ctx, dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	assert.Len(t, evs, 4)
}

// TestServeStops: when Serve's context ends, streams end with an error
// (the client learns the server stopped) and Serve returns.
func TestServeStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	st, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer st.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- server.ServeSocket(ctx, st, nil) }()
	var c *client.Client
	require.Eventually(t, func() bool { c, err = client.Dial(dir); return err == nil }, testWait, pollEvery)
	defer c.Close()
	_, err = c.Append(t.Context(), []dcb.Event{{Type: "T"}}, nil)
	require.NoError(t, err)
	var last error
	for _, err := range c.Subscribe(t.Context(), dcb.All(), 0) {
		if err != nil {
			last = err
			break
		}
		cancel() // once the subscription delivered its first event
	}
	require.Error(t, last)
	assert.Contains(t, last.Error(), "stopping")
	require.NoError(t, <-done)
	_, err = c.Append(t.Context(), []dcb.Event{{Type: "T"}}, nil)
	assert.Error(t, err, "nobody serves the store any more")
	assert.Equal(t, uint64(1), st.Head())
}
