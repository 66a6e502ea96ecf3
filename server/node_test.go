package server_test

import (
	"os/exec"
	"testing"

	"github.com/possumstore/possum/storedir"
	"github.com/stretchr/testify/require"
)

// TestNodeAPIShapes checks the HTTP API with a client that is not the Go
// client: testdata/api.mjs, in Node with its standard library, speaks to
// the socket as the DCB community test suite's HTTP adapter speaks to a
// server (GET /read with query and options as JSON, POST /append with a
// condition), and checks the shapes, the data-as-a-JSON-string round trip
// and the streams.
func TestNodeAPIShapes(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the API's shapes are checked from Node only")
	}
	s := serve(t, nil)
	out, err := exec.CommandContext(t.Context(), node, "testdata/api.mjs", storedir.SocketPath(s.dir)).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "ok\n", string(out))
}
