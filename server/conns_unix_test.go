//go:build !windows

package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/server"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fewFilesEnv asks for the child of TestConnectionsCapped: a server of the
// store in the directory it names, with few files to spare.
const fewFilesEnv = "POSSUM_SERVER_TEST_FEW_FILES"

// fewFiles is the child's limit on open files.
const fewFiles = 256

func init() { child.Register(fewFilesEnv, serveWithFewFiles) }

// serveWithFewFiles lowers the process's limit on open files to fewFiles,
// serves the store in dir on its socket and on TCP with a token, with the
// default bounds, prints the TCP address and serves until stdin closes.
func serveWithFewFiles(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fail(err)
	}
	lim.Cur = fewFiles
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fail(err)
	}
	st, err := store.Open(dir, nil)
	if err != nil {
		fail(err)
	}
	sock, err := server.ListenSocket(st)
	if err != nil {
		fail(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- server.New(st, nil).Serve(ctx, sock) }()
	go func() { done <- server.New(st, &server.Options{Token: "s3cret"}).Serve(ctx, tcp) }()
	fmt.Println(tcp.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	<-done
	<-done
	if err := st.Close(); err != nil {
		fail(err)
	}
}

// TestConnectionsCapped: more token-less TCP connections than the serving
// process may open files take neither the socket's connections nor the
// store's files. First requests without the token: each is answered 401 on
// a connection then closed (kept open, they took every file). Then
// connections that say nothing, more than the process may open: the
// socket still answers, and an append through it is written and projected.
func TestConnectionsCapped(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	cmd := child.Command(fewFilesEnv, dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		assert.NoError(t, cmd.Wait(), "the server's stderr: %s", &stderr)
	}()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the server's stderr: %s", &stderr)
	addr = strings.TrimSpace(addr)

	for i := range 2 * fewFiles {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close() // open until the test ends, on this side
		_, err = io.WriteString(conn, "GET /head HTTP/1.1\r\nHost: possum\r\n\r\n")
		require.NoError(t, err)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(testWait)))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "connection %d is answered", i)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.True(t, resp.Close, "Connection: close")
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_, err = br.ReadByte()
		require.ErrorIs(t, err, io.EOF, "the server closed connection %d", i)
	}

	for range 2 * fewFiles {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
	}
	ctx, cancel := context.WithTimeout(t.Context(), testWait)
	defer cancel()
	c, err := client.DialContext(ctx, dir, nil)
	require.NoError(t, err, "the socket answers")
	defer c.Close()
	pos, err := c.Append(ctx, []dcb.Event{{Type: "StillServed", Tags: []string{"t"}}}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := c.Stats(ctx)
		return err == nil && st.Projected >= pos
	}, testWait, pollEvery, "the projector still opens its files")
}
