package store_test

import (
	"os"
	"testing"
)

// TestMain runs the test binary as a crash child when the parent test asks
// for one (runCrashChild never returns), and the tests otherwise.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		runCrashChild(dir)
	}
	os.Exit(m.Run())
}
