package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// children maps an environment variable to the child process it asks for:
// a parent test starts this test binary with the variable set, and TestMain
// runs the child (which exits) instead of the tests.
var children = map[string]func(value string){}

// TestMain runs the test binary as the child process a parent test asked
// for, and the tests otherwise, shutting down the servers they shared.
func TestMain(m *testing.M) {
	for env, run := range children {
		if v := os.Getenv(env); v != "" {
			run(v)
			os.Exit(0)
		}
	}
	var err error
	if sharedRoot, err = os.MkdirTemp("", "possum-cluster-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	shutdownShared()
	os.RemoveAll(sharedRoot)
	os.Exit(code)
}

// childCommand returns the command that runs this test binary as the child
// registered for env, with env set to value; -test.run matches no test.
func childCommand(env, value string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+value)
	return cmd
}
