package cluster

import (
	"fmt"
	"os"
	"testing"

	"github.com/possumstore/possum/internal/testkit/child"
)

// TestMain runs the test binary as the child process a parent test asked
// for (see package child), and the tests otherwise, shutting down the
// servers they shared.
func TestMain(m *testing.M) {
	child.RunAsked()
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
