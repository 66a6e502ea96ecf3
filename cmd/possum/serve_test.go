package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/possumstore/possum/client"
	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/internal/testkit/testcert"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// startServe starts `possum serve args...` (this test binary as possum)
// and returns once it prints that it is serving, with that line.
func startServe(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := possumCommand(append([]string{"serve"}, args...)...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &child.Buffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Wait() // the copy of its stderr is complete
		t.Fatalf("possum serve said: %s", stderr.String())
	}
	require.Contains(t, line, "possum serve: serving ")
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return cmd, line
}

// TestServeKill9 kills `possum serve` with SIGKILL while clients append
// through it: each client gets an error, not a hang; the stale socket does
// not stop the next serve; a second serve of a served store is refused
// with exit 2 naming the lock; and every append a client saw acknowledged
// is in the store, with its content, also after a clean reopen.
func TestServeKill9(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	first, _ := startServe(t, dir)

	const writers = 8
	var mu sync.Mutex
	acked := map[uint64]dcb.Event{}
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	errs := make([]error, writers)
	// Half the writers have a client each; the others share one, whose
	// appends travel together.
	shared, err := client.Dial(dir)
	require.NoError(t, err)
	defer shared.Close()
	for w := range writers {
		wg.Go(func() {
			c := shared
			if w < writers/2 {
				var err error
				if c, err = client.Dial(dir); err != nil {
					errs[w] = err
					return
				}
				defer c.Close()
			}
			for i := 0; ; i++ {
				e := dcb.Event{Type: "Written", Tags: []string{fmt.Sprintf("writer:%d", w)},
					Data: json.RawMessage(fmt.Sprintf(`{"writer":%d,"i":%d}`, w, i))}
				// Every request is bounded: a dead server is an error.
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				pos, err := c.Append(ctx, []dcb.Event{e}, nil)
				cancel()
				if err != nil {
					errs[w] = err
					return
				}
				mu.Lock()
				acked[pos] = e
				if len(acked) >= 300 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(time.Minute):
		t.Fatal("the writers did not get 300 appends acknowledged")
	}
	require.NoError(t, first.Process.Kill()) // SIGKILL
	wg.Wait()
	for w, err := range errs {
		require.Error(t, err, "writer %d", w)
		assert.False(t, errors.Is(err, context.DeadlineExceeded), "writer %d: an error, not a hang: %v", w, err)
	}
	_ = first.Wait()
	_, err = os.Lstat(storedir.SocketPath(dir))
	require.NoError(t, err, "the killed server left its socket")

	// The stale socket does not stop the next serve.
	second, line := startServe(t, dir, "--listen", "127.0.0.1:0")
	assert.Contains(t, line, "http://127.0.0.1:")
	assert.Contains(t, line, "on unix socket "+storedir.SocketPath(dir)+" and")
	// A second serve of the same store is refused.
	code, out, errOut := runCmd("serve", dir)
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, store.ErrLocked.Error())
	assert.Contains(t, errOut, filepath.Join(dir, "LOCK"))

	check := func(read func(dcb.Query, store.ReadOptions) ([]dcb.SequencedEvent, error)) {
		t.Helper()
		events, err := read(dcb.All(), store.ReadOptions{})
		require.NoError(t, err)
		got := map[uint64]dcb.Event{}
		for _, e := range events {
			e.Timestamp = time.Time{} // the store's
			got[e.Position] = e.Event
		}
		for pos, want := range acked {
			assert.Equal(t, want, got[pos], "acknowledged position %d", pos)
		}
	}
	c, err := client.Dial(dir)
	require.NoError(t, err)
	defer c.Close()
	check(func(q dcb.Query, o store.ReadOptions) ([]dcb.SequencedEvent, error) {
		return collectEvents(c.Read(t.Context(), q, o))
	})
	require.NoError(t, second.Process.Signal(os.Interrupt))
	require.NoError(t, second.Wait(), "an interrupted serve exits 0")
	_, err = os.Lstat(storedir.SocketPath(dir))
	assert.ErrorIs(t, err, os.ErrNotExist, "a serve that stops removes its socket")

	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer s.Close()
	assert.Nil(t, s.OpenReport().TornTail, "the clean stop left no torn tail")
	check(func(q dcb.Query, o store.ReadOptions) ([]dcb.SequencedEvent, error) {
		return collectEvents(s.Read(t.Context(), q, o))
	})
	t.Logf("%d appends acknowledged before the kill, head %d", len(acked), s.Head())
}

func collectEvents(seq func(func(dcb.SequencedEvent, error) bool)) ([]dcb.SequencedEvent, error) {
	var out []dcb.SequencedEvent
	for e, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// TestServeUsage: --token, TLS or --insecure-no-token without --listen,
// TLS files that do not load, an address that cannot be listened on, and a
// store path too long for a socket, are refused before anything is
// created.
func TestServeUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	code, _, errOut := runCmd("serve", "--token", "t", dir)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--listen")
	for _, addr := range []string{"nonsense", "127.0.0.1:99999"} {
		code, _, errOut = runCmd("serve", "--listen", addr, dir)
		assert.Equal(t, 2, code, addr)
		assert.Contains(t, errOut, "--listen", addr)
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, "are for TCP: give --listen"},
		{[]string{"--insecure-no-token"}, "is for TCP: give --listen"},
		{[]string{"--listen", "127.0.0.1:0", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--listen", "127.0.0.1:0", "--tls-cert", "no-such.pem", "--tls-key", "no-such.pem"}, "no-such.pem"},
	} {
		code, _, errOut = runCmd(append([]string{"serve"}, append(c.args, dir)...)...)
		assert.Equal(t, 2, code, "%q", c.args)
		assert.Contains(t, errOut, c.says, "%q", c.args)
	}
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	code, _, errOut = runCmd("serve", long)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "limit of unix sockets")
	assert.NoDirExists(t, dir)
	assert.NoDirExists(t, long)
}

// TestAppendThroughServe: possum append on a store another process serves
// goes through that process, one event and an NDJSON import alike, and a
// failed condition is exit 1 there too; read, tail and stats read the
// store as ever.
func TestAppendThroughServe(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	startServe(t, dir)

	r := possum(t, "", "append", dir, "--type", "Opened", "--tag", "acct:1", "--data", `{"n":1}`)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Equal(t, "1\n", r.stdout)
	r = possum(t, "{\"type\":\"Deposited\",\"tags\":[\"acct:1\"],\"data\":{\"n\":2}}\n{\"type\":\"Deposited\",\"tags\":[\"acct:1\"]}\n", "append", dir)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Contains(t, r.stdout, "positions 2..3")
	r = possum(t, "", "append", dir, "--type", "Closed", "--if-none-match", "--tag", "acct:1", "--after", "1")
	assert.Equal(t, 1, r.code, "%s", r)

	c, err := client.Dial(dir)
	require.NoError(t, err)
	defer c.Close()
	evs, err := collectEvents(c.Read(t.Context(), dcb.All(), store.ReadOptions{}))
	require.NoError(t, err)
	require.Len(t, evs, 3)
	assert.Equal(t, []string{"Opened", "Deposited", "Deposited"}, []string{evs[0].Type, evs[1].Type, evs[2].Type})
	assert.JSONEq(t, `{"n":2}`, string(evs[1].Data))
	r = possum(t, "", "read", dir)
	require.Equal(t, 0, r.code, "%s", r)
	assert.Equal(t, evs, decodeLines(t, r.stdout))

	// stats asks the serving process for what only the writer knows.
	st := statsJSON(t, dir)
	assert.True(t, st.Served)
	assert.Equal(t, uint64(3), st.Head)
	require.NotNil(t, st.Projected)
	require.NotNil(t, st.Lag)
	assert.LessOrEqual(t, *st.Projected, st.Head)
	assert.Equal(t, st.Head-*st.Projected, *st.Lag, "nothing is being rewritten below the checkpoint")
	ws, err := c.Stats(t.Context())
	require.NoError(t, err)
	assert.Equal(t, uint64(3), ws.Head)
	assert.Equal(t, uint64(store.DefaultMaxProjectionLag), ws.MaxLag)
}

// TestServeOffLoopback: TCP off loopback without a token is refused before
// anything is created, unless --insecure-no-token says so (then it
// warns); with a token it serves. The addresses are ones this test never
// binds: a refusal stops first, and 192.0.2.1 (TEST-NET-1) is no address of
// this machine, so the listen that --insecure-no-token lets through fails.
func TestServeOffLoopback(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		code, _, errOut := runCmd("serve", "--listen", addr, dir)
		assert.Equal(t, 2, code, addr)
		assert.Contains(t, errOut, "reachable from other machines", addr)
		assert.Contains(t, errOut, "--insecure-no-token", addr)
	}
	assert.NoDirExists(t, dir)
	code, _, errOut := runCmd("serve", "--listen", "192.0.2.1:0", "--insecure-no-token", dir)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "warning: 192.0.2.1:0 serves without a token (--insecure-no-token)")
	assert.Contains(t, errOut, "--listen: listen tcp 192.0.2.1:0", "the check let it through to the listen")
	assert.NoDirExists(t, dir)
	code, _, errOut = runCmd("serve", "--listen", "192.0.2.1:0", "--token", "t", dir)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--listen: listen tcp 192.0.2.1:0", "a token lets it through to the listen")
	assert.NoDirExists(t, dir)
}

// TestServeTLS: possum serve --tls-cert --tls-key serves TCP over TLS; a
// client trusting the certificate appends through it.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	cert := testcert.New(t)
	certFile, keyFile := filepath.Join(base, "cert.pem"), filepath.Join(base, "key.pem")
	require.NoError(t, os.WriteFile(certFile, cert.CertPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, cert.KeyPEM, 0o600))
	dir := filepath.Join(base, "store")
	_, line := startServe(t, dir, "--listen", "127.0.0.1:0", "--token", "t", "--tls-cert", certFile, "--tls-key", keyFile)
	_, url, ok := strings.Cut(strings.TrimSpace(line), " and on ")
	require.True(t, ok, line)
	require.True(t, strings.HasPrefix(url, "https://127.0.0.1:"), line)
	c, err := client.DialOptions(url, &client.Options{Token: "t", TLSConfig: cert.Client()})
	require.NoError(t, err)
	defer c.Close()
	pos, err := c.Append(t.Context(), []dcb.Event{{Type: "OverTLS"}}, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(1), pos)
}
