//go:build linux || darwin

package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/possumstore/possum/dcb"
	"github.com/possumstore/possum/internal/testkit/child"
	"github.com/possumstore/possum/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fence is one fenced code block of the README.
type fence struct {
	info string // what follows the opening ```: "go", "sh", "sh norun"
	line int    // of the opening fence, for messages
	body string
}

// readmeFences returns the README's fenced code blocks, in order.
func readmeFences(t *testing.T) []fence {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	defer f.Close()
	var fences []fence
	var cur *fence
	var body strings.Builder
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &fence{info: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: n}
			body.Reset()
		case cur != nil && line == "```":
			cur.body = body.String()
			fences = append(fences, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line + "\n")
		}
	}
	require.NoError(t, sc.Err())
	require.Nil(t, cur, "README.md: a code block opened at line %d never closes", func() int {
		if cur == nil {
			return 0
		}
		return cur.line
	}())
	return fences
}

// shellCommands returns a shell block's commands, comments and blank lines left out.
func shellCommands(body string) []string {
	var cmds []string
	for _, line := range strings.Split(body, "\n") {
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// TestREADME runs what the README shows a newcomer, so that it stays true:
// the two first commands (the demo, and the test command CI runs), the
// install commands (this module's path), every Go program (built and run:
// the append and the decision against one store, the service serving a
// store while the client program appends to it, twice, its ID making the
// second a retry) and every shell block (run with possum on the PATH).
func TestREADME(t *testing.T) {
	t.Parallel()
	fences := readmeFences(t)
	var programs, shells, clusters []fence
	for _, f := range fences {
		switch f.info {
		case "go":
			programs = append(programs, f)
		case "sh":
			shells = append(shells, f)
		case "sh norun":
			checkInstall(t, f)
		case "sh cluster":
			clusters = append(clusters, f)
		default:
			t.Errorf("README.md:%d: a code block of kind %q: this test checks go, sh and sh norun blocks only", f.line, f.info)
		}
	}
	require.NotEmpty(t, shells)
	require.Len(t, programs, 4, "the README's Go programs: an append and a read, a decision, a service, a client")
	require.Len(t, clusters, 1, "the README's cluster on one machine")
	t.Run("first commands", func(t *testing.T) {
		t.Parallel()
		checkFirstCommands(t, shells[0])
	})
	t.Run("shell", func(t *testing.T) {
		t.Parallel()
		for _, sh := range shells[1:] {
			runShell(t, sh)
		}
	})
	t.Run("programs", func(t *testing.T) {
		t.Parallel()
		runPrograms(t, programs)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		runCluster(t, clusters[0])
	})
}

// checkFirstCommands pins the README's first block: the demo, and exactly
// the test command .ci/run runs. The demo runs here as `possum demo`.
func checkFirstCommands(t *testing.T, f fence) {
	cmds := shellCommands(f.body)
	require.Len(t, cmds, 2, "README.md:%d: the first block gives two commands", f.line)
	assert.Equal(t, "go run ./cmd/possum demo", cmds[0], "README.md:%d", f.line)

	ci, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	require.NoError(t, err)
	var tests []string
	for _, line := range strings.Split(string(ci), "\n") {
		if strings.HasPrefix(line, "go test ") {
			tests = append(tests, line)
		}
	}
	assert.Equal(t, []string{cmds[1]}, tests, "README.md:%d: .ci/run must run exactly the README's test command", f.line)

	dir := t.TempDir()
	cmd := possumCommand("demo")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "possum demo: %s", out)
	require.DirExists(t, filepath.Join(dir, "possum-demo"), "the demo's default store directory")
}

// checkInstall holds a block the test cannot run (it would fetch this module
// from the network) to what it may say: go get and go install of this
// module, the command from the cmd/possum it tests.
func checkInstall(t *testing.T, f fence) {
	mod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	require.NoError(t, err)
	path := regexp.MustCompile(`(?m)^module (\S+)$`).FindSubmatch(mod)
	require.NotNil(t, path)
	allowed := map[string]bool{
		"go get " + string(path[1]) + "@latest":                true,
		"go install " + string(path[1]) + "/cmd/possum@latest": true,
	}
	for _, c := range shellCommands(f.body) {
		assert.True(t, allowed[c], "README.md:%d: %q: a block marked norun may only go get or go install this module (%s)", f.line, c, path[1])
	}
}

// possumBin returns a directory holding possum: this test binary run as
// the command.
func possumBin(t *testing.T) string {
	bin := t.TempDir()
	wrapper := "#!/bin/sh\n" + runPossumEnv + "=1 exec '" + os.Args[0] + "' \"$@\"\n"
	require.NoError(t, os.WriteFile(filepath.Join(bin, "possum"), []byte(wrapper), 0o755))
	return bin
}

// bash returns the command that runs script with bash -e in dir, the
// directories bins first on the PATH.
func bash(dir, script string, bins ...string) *exec.Cmd {
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
	cmd.Dir = dir
	path := append(bins, os.Getenv("PATH"))
	cmd.Env = append(os.Environ(), "PATH="+strings.Join(path, string(os.PathListSeparator)))
	return cmd
}

// runShell runs a shell block with bash -e in a new directory, possum on
// the PATH.
func runShell(t *testing.T, f fence) {
	dir := t.TempDir()
	cmd := bash(dir, strings.ReplaceAll(f.body, "go run ./cmd/possum", "possum"), possumBin(t))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "README.md:%d:\n%s\n%s", f.line, f.body, out)

	// What the block claims of the pipe it shows: an exact copy.
	if strings.Contains(f.body, "possum read possum-demo | possum append copy-of-demo") {
		original := possum(t, "", "read", filepath.Join(dir, "possum-demo"))
		copied := possum(t, "", "read", filepath.Join(dir, "copy-of-demo"))
		require.Equal(t, 0, original.code, "%s", original)
		require.Equal(t, original.stdout, copied.stdout, "README.md:%d: the piped copy differs from its original", f.line)
	}
}

// runPrograms builds the README's four programs and runs them in one
// directory, as a newcomer would: the append twice (its event's ID makes
// the second a retry), the decision, then the service with the client
// appending through it twice.
func runPrograms(t *testing.T, programs []fence) {
	src, bin, work := t.TempDir(), t.TempDir(), t.TempDir()
	names := []string{"append", "decide", "service", "client"}
	var wg sync.WaitGroup
	errs := make([]error, len(programs))
	outs := make([][]byte, len(programs))
	for i, p := range programs {
		file := filepath.Join(src, names[i]+".go")
		require.NoError(t, os.WriteFile(file, []byte(p.body), 0o644))
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command("go", "build", "-o", filepath.Join(bin, names[i]), file)
			cmd.Dir = filepath.Join("..", "..") // inside this module, which resolves its imports
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i, p := range programs {
		require.NoError(t, errs[i], "README.md:%d: the %s program does not build:\n%s", p.line, names[i], outs[i])
	}
	run := func(name string) {
		cmd := exec.Command(filepath.Join(bin, name))
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "the README's %s program:\n%s", name, out)
	}

	run("append")
	run("append")
	run("decide")
	courses := readAll(t, filepath.Join(work, "data", "courses"))
	require.Len(t, courses, 2, "the append twice (its ID written once) and the decision's own")
	assert.Equal(t, "subscribe-s1-c1", courses[0].ID)
	assert.Equal(t, "StudentSubscribed", courses[1].Type)

	service := exec.Command(filepath.Join(bin, "service"))
	service.Dir = work
	var serviceOut child.Buffer
	service.Stdout, service.Stderr = &serviceOut, &serviceOut
	require.NoError(t, service.Start())
	done := make(chan error, 1)
	go func() { done <- service.Wait() }()
	t.Cleanup(func() { _ = service.Process.Kill() })
	socket := filepath.Join(work, "data", "orders", "possum.sock")
	require.Eventually(t, func() bool {
		_, err := os.Stat(socket)
		return err == nil
	}, time.Minute, 10*time.Millisecond, "the service never served %s: %s", socket, serviceOut.String())
	run("client")
	run("client")
	require.NoError(t, service.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		require.NoError(t, err, "the service on SIGTERM: %s", serviceOut.String())
	case <-time.After(time.Minute):
		t.Fatalf("the service did not stop on SIGTERM: %s", serviceOut.String())
	}
	orders := readAll(t, filepath.Join(work, "data", "orders"))
	require.Len(t, orders, 1, "the client twice: its event's ID makes the second a retry")
	assert.Equal(t, "order-7-placed", orders[0].ID)
}

// readAll returns every event of the store in dir.
func readAll(t *testing.T, dir string) []dcb.SequencedEvent {
	t.Helper()
	s, err := store.Open(dir, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	var all []dcb.SequencedEvent
	for e, err := range s.Read(context.Background(), dcb.All(), store.ReadOptions{}) {
		require.NoError(t, err)
		all = append(all, e)
	}
	return all
}

// runCluster runs the README's cluster on one machine: three NATS servers
// (built from the nats-server module this one requires for its tests) and
// three nodes, on ports free now instead of the block's own, stopped with
// the script. Its last command prints the store, which must hold the two
// events appended, the third append refused.
func runCluster(t *testing.T, f fence) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "nats-server"), "github.com/nats-io/nats-server/v2")
	build.Dir = filepath.Join("..", "..")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building nats-server: %s", out)

	script := f.body
	for _, port := range regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindAllStringSubmatch(f.body, -1) {
		if !strings.Contains(script, "127.0.0.1:"+port[1]) {
			continue // replaced already
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		free := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		script = strings.ReplaceAll(script, "127.0.0.1:"+port[1], "127.0.0.1:"+free)
		script = regexp.MustCompile(`-p `+port[1]+`\b`).ReplaceAllString(script, "-p "+free)
	}
	// The servers and the nodes stop with the script (possum serve and
	// nats-server end on SIGTERM), and with the test should it fail.
	script = "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + script
	dir := t.TempDir()
	cmd := bash(dir, script, possumBin(t), bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var output child.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	select {
	case err = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("README.md:%d: the cluster block has not ended after 3 minutes:\n%s", f.line, output.String())
	}
	require.NoError(t, err, "README.md:%d:\n%s\n%s", f.line, script, output.String())
	got := output.String()
	assert.Contains(t, got, "refused: node2 enrolled ada first", "README.md:%d: the third append is refused", f.line)
	assert.Equal(t, 2, strings.Count(got, `{"position":`), "README.md:%d: node3 reads both events:\n%s", f.line, got)
}

// TestReferenceUsage: docs/REFERENCE.md lists the commands with their flags
// as possum help does (its usage lines, without the lines saying what each
// does), so that a flag added is a flag documented.
func TestReferenceUsage(t *testing.T) {
	t.Parallel()
	ref, err := os.ReadFile(filepath.Join("..", "..", "docs", "REFERENCE.md"))
	require.NoError(t, err)
	start := strings.Index(string(ref), "```\nusage: possum COMMAND")
	require.GreaterOrEqual(t, start, 0, "docs/REFERENCE.md has no block of possum help's usage lines")
	block := string(ref[start+len("```\n"):])
	block = block[:strings.Index(block, "```")]

	r := possum(t, "", "help")
	require.Equal(t, 0, r.code, r)
	var usage strings.Builder
	for _, line := range strings.SplitAfter(r.stdout+r.stderr, "\n") {
		if strings.HasPrefix(line, "usage: ") || strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "    ") {
			usage.WriteString(line)
		}
	}
	assert.Equal(t, usage.String(), block, "docs/REFERENCE.md: the usage lines of possum help")
}
