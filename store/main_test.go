package store_test

import (
	"testing"

	"github.com/possumstore/possum/internal/testkit/child"
)

func init() { child.Register(crashChildEnv, runCrashChild) }

// TestMain runs the test binary as the child process a parent test asked
// for (see package child), and the tests otherwise.
func TestMain(m *testing.M) { child.Main(m) }
