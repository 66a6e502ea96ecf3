package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/require"
)

// runPossumEnv makes the test binary run as the possum command.
const runPossumEnv = "POSSUM_TEST_RUN_POSSUM"

// holdStoreEnv makes the test binary a process that holds a store open:
// it opens the store the variable names, prints "held PID" and waits until
// its stdin closes.
const holdStoreEnv = "POSSUM_TEST_HOLD_STORE"

func init() {
	child.Register(runPossumEnv, func(string) { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) })
	child.Register(holdStoreEnv, func(dir string) { os.Exit(holdStore(dir)) })
}

// TestMain runs the test binary as one of the processes the tests start:
// the hidden reopen command `possum bench` re-executes, the possum command,
// or a process holding a store open (see package child).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == reopenChild {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	child.Main(m)
}

func holdStore(dir string) int {
	s, err := store.Open(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("held %d\n", os.Getpid())
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// possumCommand runs this test binary as `possum args...`.
func possumCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runPossumEnv+"=1")
	return cmd
}

// result is what a possum process did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// possum runs the possum command as a process, stdin its standard input,
// and waits for it to end.
func possum(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := possumCommand(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(t, err, "possum %q", args)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String()}
}

// holdOpen starts a process that opens the store in dir (creating it) and
// holds it open until the test ends; it returns that process's id.
func holdOpen(t *testing.T, dir string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdStoreEnv+"="+dir)
	var errOut child.Buffer // written by the copying goroutine as the test reads it
	cmd.Stderr = &errOut
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	watchdog := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	t.Cleanup(func() {
		stdin.Close()
		require.NoError(t, cmd.Wait(), "the holder of %s: %s", dir, errOut.String())
		watchdog.Stop()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the holder of %s: %s", dir, errOut.String())
	pid, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "held "))
	require.NoError(t, err, "%q", line)
	return pid
}
