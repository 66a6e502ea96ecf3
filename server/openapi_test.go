package server_test

import (
	"os"
	"strings"
	"testing"

	"github.com/possumstore/possum/internal/wire"
	"github.com/possumstore/possum/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openAPIOperations returns the operations of docs/openapi.yaml as
// "METHOD /path", read from its paths section (two-space indented paths,
// four-space indented methods).
func openAPIOperations(t *testing.T, doc string) []string {
	t.Helper()
	var ops []string
	inPaths, path := false, ""
	for line := range strings.Lines(doc) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && !strings.HasPrefix(line, " "):
			inPaths = false
		case inPaths && strings.HasPrefix(line, "  /"):
			path = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case inPaths && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     "):
			m := strings.TrimSuffix(strings.TrimSpace(line), ":")
			switch m {
			case "get", "post", "put", "delete", "patch", "head", "options":
				ops = append(ops, strings.ToUpper(m)+" "+path)
			}
		}
	}
	return ops
}

// TestOpenAPIDescribesEveryRoute: docs/openapi.yaml describes exactly the
// operations the server answers, and every error code it sends.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.yaml")
	require.NoError(t, err)
	doc := string(b)
	var routes []string
	for _, r := range server.Routes() {
		routes = append(routes, r[0]+" "+r[1])
	}
	assert.ElementsMatch(t, routes, openAPIOperations(t, doc))
	for _, code := range []string{
		wire.CodeBadRequest, wire.CodeInvalidEvent, wire.CodeInvalidQuery, wire.CodeConditionFailed,
		wire.CodeClosed, wire.CodeCorrupt, wire.CodePoisoned, wire.CodeLocked, wire.CodeTooLarge,
		wire.CodeTimeout, wire.CodeUnauthorized, wire.CodeUnsupported, wire.CodeNotFound,
		wire.CodeMethod, wire.CodeUnavailable, wire.CodeSlowReader, wire.CodeInternal, wire.CodeIDConflict,
	} {
		assert.Contains(t, doc, "            - "+code, "the Error schema lists code %s", code)
	}
}
