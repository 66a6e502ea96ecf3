package store_test

import (
	"os"
	"os/exec"
	"testing"
)

// children maps an environment variable to the child process it asks for:
// a parent test starts this test binary with the variable set, and TestMain
// runs the child (which exits) instead of the tests. Files register their
// children in init, so that a platform-only child stays behind its build tag.
var children = map[string]func(value string){}

// TestMain runs the test binary as the child process a parent test asked
// for, and the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
	}
	for env, run := range children {
		if v := os.Getenv(env); v != "" {
			run(v)
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// childCommand returns the command that runs this test binary as the child
// registered for env, with env set to value; -test.run matches no test.
func childCommand(env, value string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+value)
	return cmd
}
