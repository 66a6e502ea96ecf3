// Package layering_test checks the arrows between possum's packages: each
// layer imports only those below it (cmd → {recovery, cluster, server,
// client, decision} → store → projector → {indexer, wal} → storedir → dcb,
// internal/sys beneath the engine; cluster, decision, server and client use
// the store's public API only), and NATS reaches no package of the store's.
package layering_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const mod = "github.com/possumstore/possum"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// packages lists every package of the module (not its tests).
func packages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", mod+"/...")
	cmd.Dir = "../../.."
	out, err := cmd.Output()
	require.NoError(t, err)
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, mod), "/")] = p
	}
	require.Contains(t, pkgs, "store")
	return pkgs
}

// ours returns the packages of the module p imports directly, relative to
// the module.
func ours(p pkg) []string {
	var out []string
	for _, imp := range p.Imports {
		if rel, ok := strings.CutPrefix(imp, mod+"/"); ok {
			out = append(out, rel)
		}
	}
	return out
}

func TestLayering(t *testing.T) {
	pkgs := packages(t)
	low := []string{"internal/sys/platform", "internal/sys/vfs"}
	allowed := map[string][]string{
		"dcb":                   nil,
		"internal/sys/platform": nil,
		"internal/sys/vfs":      {"internal/sys/platform"},
		"storedir":              append([]string{"dcb"}, low...),
		"wal":                   append([]string{"dcb", "storedir"}, low...),
		"indexer":               append([]string{"dcb", "storedir"}, low...),
		"projector":             append([]string{"dcb", "storedir", "wal", "indexer"}, low...),
		"store":                 append([]string{"dcb", "storedir", "wal", "indexer", "projector"}, low...),
		"recovery":              append([]string{"dcb", "storedir", "wal", "indexer", "projector", "store"}, low...),
		"decision":              {"dcb", "store"},
		"internal/wire":         {"dcb", "store", "storedir"},
		"server":                append([]string{"dcb", "store", "storedir", "internal/wire"}, low...),
		"client":                {"dcb", "store", "storedir", "internal/wire"},
		"cluster":               {"dcb", "store", "server"},
		// What the commands use besides the public packages.
		"internal/opossum":           {"dcb", "internal/sys/platform"},
		"internal/benchkit/workload": {"dcb", "store"},
		"internal/benchkit/rawdisk":  {"internal/sys/platform"},
	}
	for name, want := range allowed {
		p, ok := pkgs[name]
		require.True(t, ok, "no package %s", name)
		for _, imp := range ours(p) {
			if !slices.Contains(want, imp) {
				t.Errorf("%s imports %s: not below it", name, imp)
			}
		}
	}
	for name, p := range pkgs {
		for _, imp := range ours(p) {
			switch {
			case strings.HasPrefix(imp, "internal/testkit"):
				t.Errorf("%s imports %s: test helpers are for tests", name, imp)
			case strings.HasPrefix(imp, "cmd/"):
				t.Errorf("%s imports %s", name, imp)
			}
		}
	}
	for _, engine := range []string{"projector", "wal", "indexer"} {
		require.NotContains(t, ours(pkgs["cmd/possum"]), engine, "the command uses the public packages")
	}
}

// TestNoNATSInTheStore: the store, its vocabulary and the decision models
// depend on nothing of NATS, however indirectly.
func TestNoNATSInTheStore(t *testing.T) {
	pkgs := packages(t)
	for _, name := range []string{"store", "dcb", "decision", "storedir"} {
		for _, dep := range pkgs[name].Deps {
			if strings.Contains(dep, "nats") {
				t.Errorf("%s depends on %s", name, dep)
			}
		}
	}
}
