package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/wal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every command prints its usage on --help and -h, wherever they are, and
// exits 0: the command line, what it does, and each flag with its default.
func TestCommandHelp(t *testing.T) {
	wantFlags := map[string][]string{
		"demo":    nil,
		"verify":  {"json"},
		"recover": {"json", "dry-run", "allow-data-loss"},
		"tail":    {"type", "tag", "or", "from", "follow", "cursor"},
		"read":    {"type", "tag", "or", "from", "limit", "backwards", "table"},
		"stats":   {"json", "top"},
		"append":  {"type", "tag", "or", "data", "meta", "id", "timestamp", "if-none-match", "after", "stdin", "batch"},
		"bench":   {"events", "dir", "json", "scale"},
		"serve":   {"listen", "token", "tls-cert", "tls-key", "insecure-no-token", "nats", "stream", "subject", "replicas", "nats-wait"},
		"backup":  {"json"},
		"push":    {"nats", "stream", "subject", "replicas", "nats-wait", "json"},
		"version": nil,
	}
	wantFlags["import-opossum"] = []string{"json", "fill-gaps"}
	require.Len(t, commands, len(wantFlags), "a new command needs its flags listed here")
	dir := filepath.Join(t.TempDir(), "store")
	for _, c := range commands {
		want, ok := wantFlags[c.name]
		require.True(t, ok, "command %s has no flags listed here", c.name)
		fs := c.flagSet()
		c.setup(fs)
		var defined []string
		fs.VisitAll(func(f *flag.Flag) { defined = append(defined, f.Name) })
		assert.ElementsMatch(t, want, defined, c.name)

		for _, args := range [][]string{
			{c.name, "--help"},
			{c.name, "-h"},
			{c.name, "-help"},
			{c.name, dir, "--help"},
			{c.name, "-h", dir},
			{"help", c.name},
			{"--help", c.name},
		} {
			code, out, errOut := runCmd(args...)
			assert.Equal(t, 0, code, "%q: stderr: %s", args, errOut)
			assert.Empty(t, errOut, "%q", args)
			assert.Regexp(t, "usage: possum "+c.name+"[ \n]", out, "%q", args)
			assert.Contains(t, out, c.help, "%q", args)
			assert.Contains(t, out, "--help", "%q", args)
			fs.VisitAll(func(f *flag.Flag) {
				assert.Contains(t, out, "["+flagArg(f)+"]", "%q: the command line lists --%s", args, f.Name)
				assert.Contains(t, out, "--"+f.Name+" ", "%q", args)
				assert.Contains(t, out, flagHelp(f)+"\n", "%q", args)
			})
			if c.more != "" {
				assert.Contains(t, out, c.more, "%q", args)
			}
			assert.NotContains(t, out, "flag: help requested", "%q", args)
		}
	}
	assert.NoDirExists(t, dir, "help must not create the store")

	for _, arg := range []string{"--help", "-h", "help"} {
		code, out, errOut := runCmd(arg)
		assert.Equal(t, 0, code, arg)
		assert.Empty(t, errOut, arg)
		for _, c := range commands {
			assert.Regexp(t, "\n  "+c.name+"[ \n]", out, "%s lists %s", arg, c.name)
		}
	}
	for _, args := range [][]string{{"help", "no-such-command"}, {"help", "verify", "x"}} {
		code, out, errOut := runCmd(args...)
		assert.Equal(t, 2, code, "%q", args)
		assert.Empty(t, out, "%q", args)
		assert.Contains(t, errOut, "usage: possum COMMAND", "%q", args)
	}
}

// Flags work after DIR, before it, and mixed, and "--" ends them. Usage
// errors exit 2 with a message and the usage, and leave the store alone.
func TestFlagsAfterDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	buildStore(t, dir, 40)
	segs := segments(t, dir)
	last := segs[len(segs)-1]
	tearTail(t, last.path) // repairable
	before := testdir.Hash(t, dir)

	// On a store that needs a repair, verify exits 1, and so does recover
	// with --dry-run (without it, it would repair and exit 0). The report
	// parses as JSON only if --json was seen.
	for _, args := range [][]string{
		{"verify", dir, "--json"},
		{"verify", "--json", dir},
		{"verify", "--json", "--", dir},
		{"verify", dir, "--json=true"},
		{"recover", dir, "--dry-run", "--json"},
		{"recover", dir, "--json", "--dry-run"},
		{"recover", "--json", dir, "--dry-run"},
		{"recover", "--dry-run", dir, "--json"},
		{"recover", "-json", "-dry-run", "--", dir},
		{"recover", dir, "--dry-run=true", "--json=1"},
	} {
		rep, _ := runJSON(t, 1, args...)
		assert.Equal(t, 1, rep.Counts[recovery.WALTornTail], "%q", args)
		assert.Equal(t, dir, rep.Dir, "%q", args)
		require.Equal(t, before, testdir.Hash(t, dir), "%q changed the store", args)
	}

	for _, args := range [][]string{
		{"recover", dir, "--no-such-flag"},
		{"recover", dir, "--dry-run", "extra"},
		{"recover", dir, "--json=maybe"},
		{"recover", "--", dir, "--dry-run"}, // after --, --dry-run is a second argument
		{"recover", dir, dir},
		{"verify", dir, "--dry-run"},
		{"verify", dir, "-", "--json"},
	} {
		code, out, errOut := runCmd(args...)
		assert.Equal(t, 2, code, "%q", args)
		assert.Empty(t, out, "%q", args)
		assert.Contains(t, errOut, "possum "+args[0]+": ", "%q", args)
		assert.Contains(t, errOut, "usage: possum "+args[0]+" ", "%q", args)
		assert.Equal(t, 1, strings.Count(errOut, "usage:"), "%q: the usage once: %s", args, errOut)
		require.Equal(t, before, testdir.Hash(t, dir), "%q changed the store", args)
	}
	_, _, errOut := runCmd("recover", dir, "extra")
	assert.Contains(t, errOut, `want exactly 1 argument (DIR), got 2: [`)
	_, _, errOut = runCmd("recover", dir, "--bogus")
	assert.Contains(t, errOut, "bogus")

	// Without --dry-run, after DIR: repaired.
	rep, _ := runJSON(t, 0, "recover", dir, "--json")
	assert.Equal(t, 1, rep.Counts[recovery.WALTornTail])
	assert.NotEmpty(t, rep.Repairs)
	rep, _ = runJSON(t, 0, "verify", dir, "--json")
	assert.True(t, rep.Consistent(), "%+v", rep.Problems)
}

// "--" makes a directory whose name looks like a flag an argument.
func TestDashDashEndsFlags(t *testing.T) {
	t.Chdir(t.TempDir())
	code, out, errOut := runCmd("verify", "--", "--json")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "not a possum store")
	assert.Contains(t, errOut, "--json")

	code, out, errOut = runCmd("demo", "--", "-store")
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	assert.Contains(t, out, "possum demo, run 1, in -store: a new store")
	assert.Contains(t, out, "possum read ./-store --tag course:1 --table")
	assert.DirExists(t, "-store")
}

// The demo's DIR is optional.
func TestDemoDefaultDir(t *testing.T) {
	t.Chdir(t.TempDir())
	code, out, errOut := runCmd("demo")
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	assert.Contains(t, out, "possum demo, run 1, in possum-demo: a new store")
	assert.DirExists(t, "possum-demo")
}

// onOff is a boolean flag that is not a flag.Bool: parseArgs must ask it.
type onOff bool

func (o *onOff) String() string   { return strconv.FormatBool(bool(*o)) }
func (o *onOff) IsBoolFlag() bool { return true }
func (o *onOff) Set(s string) error {
	b, err := strconv.ParseBool(s)
	*o = onOff(b)
	return err
}

func TestParseArgs(t *testing.T) {
	type result struct {
		pos  []string
		name string
		n    int
		v    bool
		on   onOff
	}
	parse := func(args ...string) (result, error) {
		var r result
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(testWriter{t})
		fs.StringVar(&r.name, "name", "", "")
		fs.IntVar(&r.n, "n", 0, "")
		fs.BoolVar(&r.v, "v", false, "")
		fs.Var(&r.on, "on", "")
		var err error
		r.pos, err = parseArgs(fs, args)
		return r, err
	}
	for _, c := range []struct {
		args []string
		want result
	}{
		{nil, result{}},
		{[]string{"a", "b"}, result{pos: []string{"a", "b"}}},
		{[]string{"a", "--name", "x", "b", "-v"}, result{pos: []string{"a", "b"}, name: "x", v: true}},
		{[]string{"--name=x", "a"}, result{pos: []string{"a"}, name: "x"}},
		{[]string{"a", "-name=x=y"}, result{pos: []string{"a"}, name: "x=y"}},
		{[]string{"a", "--name", "-v"}, result{pos: []string{"a"}, name: "-v"}}, // a value flag takes the next argument as is
		{[]string{"a", "--name", "--"}, result{pos: []string{"a"}, name: "--"}}, // ... even "--"
		{[]string{"-n", "3", "a", "--", "-v", "--name"}, result{pos: []string{"a", "-v", "--name"}, n: 3}},
		{[]string{"a", "--", "--"}, result{pos: []string{"a", "--"}}},
		{[]string{"a", "-"}, result{pos: []string{"a", "-"}}},
		{[]string{"-v", "a", "--v=false"}, result{pos: []string{"a"}}},
		{[]string{"--on", "a", "b"}, result{pos: []string{"a", "b"}, on: true}}, // a boolean does not take "a"
		{[]string{"a", "--on=false", "--n=-2"}, result{pos: []string{"a"}, n: -2}},
		{[]string{"a", "--n", "-2"}, result{pos: []string{"a"}, n: -2}},
	} {
		got, err := parse(c.args...)
		require.NoError(t, err, "%q", c.args)
		if c.want.pos == nil {
			c.want.pos = []string{}
		}
		if got.pos == nil {
			got.pos = []string{}
		}
		assert.Equal(t, c.want, got, "%q", c.args)
	}
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"a", "--name"}, "--name needs a value: --name string"},
		{[]string{"a", "-name"}, "--name needs a value: --name string"},
		{[]string{"a", "--zzz"}, "unknown flag --zzz"},
		{[]string{"a", "-zzz=1"}, "unknown flag --zzz"},
		{[]string{"a", "--n", "x"}, `invalid value "x" for --n: want a whole number`},
		{[]string{"a", "---v"}, "bad flag syntax: ---v"},
		{[]string{"a", "--v=maybe"}, `invalid value "maybe" for --v: want true or false`},
	} {
		_, err := parse(c.args...)
		require.Error(t, err, "%q", c.args)
		assert.Equal(t, c.err, err.Error(), "%q", c.args)
	}
	for _, args := range [][]string{{"a", "-h"}, {"--help", "a"}, {"a", "--name", "x", "-help"}} {
		_, err := parse(args...)
		assert.True(t, errors.Is(err, flag.ErrHelp), "%q: %v", args, err)
	}
}

// testWriter sends the flag package's own messages to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Messages about flags write them as the usage does, --name, never -name
// (the flag package's way): a missing value, a bad value, an unknown flag.
func TestFlagMessagesUseTwoDashes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	for _, c := range commands {
		fs := c.flagSet()
		c.setup(fs)
		var cases [][]string
		fs.VisitAll(func(f *flag.Flag) {
			if isBool(f) {
				cases = append(cases, []string{c.name, "-" + f.Name + "=maybe", dir})
			} else {
				cases = append(cases, []string{c.name, dir, "-" + f.Name})
			}
		})
		cases = append(cases, []string{c.name, "-no-such-flag", dir})
		for _, args := range cases {
			code, out, errOut := runCmd(args...)
			assert.Equal(t, 2, code, "%q", args)
			assert.Empty(t, out, "%q", args)
			msg, _, _ := strings.Cut(errOut, "\n")
			name := strings.TrimLeft(strings.Split(args[len(args)-1], "=")[0], "-")
			if args[len(args)-1] == dir {
				name = strings.TrimLeft(strings.Split(args[1], "=")[0], "-")
			}
			assert.Contains(t, msg, "--"+name, "%q", args)
			assert.NotRegexp(t, `(^|[^-])-`+name, strings.ReplaceAll(msg, "--"+name, ""), "%q: %s", args, msg)
		}
	}
	assert.NoDirExists(t, dir)
}

// possum version and possum --version print the module version, the Go
// version and the formats possum writes and reads.
func TestVersion(t *testing.T) {
	code, out, errOut := runCmd("version")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, errOut)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 4, out)
	want := "(unknown)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		want = bi.Main.Version
	}
	assert.True(t, strings.HasPrefix(lines[0], "possum "+want), out)
	assert.Contains(t, lines[1], runtime.Version())
	assert.Contains(t, lines[2], fmt.Sprintf("store format %d", store.FormatVersion))
	assert.Contains(t, lines[3], fmt.Sprintf("WAL frames version %d", wal.FormatVersion))
	for _, alias := range []string{"--version", "-version"} {
		code, aliasOut, errOut := runCmd(alias)
		assert.Equal(t, 0, code, errOut)
		assert.Equal(t, out, aliasOut, alias)
	}
	code, out, errOut = runCmd("version", "x")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "possum version: takes no arguments, got 1")
}
