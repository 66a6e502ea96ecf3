// Package child runs a test binary as the child process one of its tests
// asks for: a test that must kill, stall or crash a real process (kill -9
// mid-append, SIGSTOP, a mount namespace) starts its own binary with an
// environment variable set, and the binary's TestMain runs that child
// instead of the tests.
//
// A package registers its children in init (so that a platform-only child
// stays behind its build tag) and calls Main from TestMain.
//
// It is internal/testkit: tests only.
package child

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// children maps an environment variable to the child it asks for.
var children = map[string]func(value string){}

// Register makes the test binary run child when the variable env is set
// (to value, which child gets), and exit 0 once it returns; a child that
// fails exits with another code itself.
func Register(env string, child func(value string)) {
	if _, dup := children[env]; dup {
		panic("child: " + env + " registered twice")
	}
	children[env] = child
}

// Main is TestMain: it runs the child the environment asks for, if any,
// and the tests otherwise.
func Main(m *testing.M) {
	RunAsked()
	os.Exit(m.Run())
}

// RunAsked runs the child the environment asks for, if any, and exits; it
// returns when none is asked for. A TestMain with setup of its own for the
// tests calls it first.
func RunAsked() {
	for env, run := range children {
		if v := os.Getenv(env); v != "" {
			run(v)
			os.Exit(0)
		}
	}
}

// Command returns the command that runs this test binary as the child
// registered for env, with env set to value; -test.run matches no test, so
// that a child that returns runs none.
func Command(env, value string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "-test.count=1"}, args...)...)
	cmd.Env = append(os.Environ(), env+"="+value)
	return cmd
}

// Buffer is a bytes.Buffer safe for concurrent writers and a reader: a
// child's output as os/exec's goroutine copies it while the test reads, a
// logger's sink written by many goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
