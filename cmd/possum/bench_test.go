package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/possumstore/possum/internal/testkit/testdir"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The JSON document of `possum bench --json`, as a machine reads it: the
// field names are the contract.
type benchJSON struct {
	Machine struct {
		GOOS      string `json:"goos"`
		GOARCH    string `json:"goarch"`
		NumCPU    int    `json:"numCPU"`
		GoVersion string `json:"goVersion"`
	} `json:"machine"`
	Events    int `json:"events"`
	RawLimits []struct {
		Name  string  `json:"name"`
		Value float64 `json:"value"`
		Unit  string  `json:"unit"`
	} `json:"rawLimits"`
	Workloads []struct {
		Name           string  `json:"name"`
		Value          float64 `json:"value"`
		Unit           string  `json:"unit"`
		Limit          float64 `json:"limit"`
		LimitName      string  `json:"limitName"`
		Ratio          float64 `json:"ratio"`
		HigherIsBetter bool    `json:"higherIsBetter"`
		Failures       int     `json:"failures"`
	} `json:"workloads"`
	Scale *struct {
		Slices []struct {
			From, To     int
			EventsPerSec float64 `json:"eventsPerSecond"`
		} `json:"slices"`
		Flatness float64 `json:"flatness"`
		Reopens  []struct {
			Events   int     `json:"events"`
			Seconds  float64 `json:"seconds"`
			RSSBytes int64   `json:"rssBytes"`
		} `json:"reopens"`
	} `json:"scale"`
}

// `possum bench --events 5000 --json` runs every workload, each next to
// its limit with ratio = value/limit, prints one JSON document, and leaves
// nothing behind in --dir. The table prints every workload too.
func TestBenchJSON(t *testing.T) {
	dir := testdir.Tmpfs(t)
	code, out, errOut := runCmd("bench", "--events", "5000", "--json", "--dir", dir)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var rep benchJSON
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "stdout: %s", out)

	assert.NotEmpty(t, rep.Machine.GOOS)
	assert.NotEmpty(t, rep.Machine.GOARCH)
	assert.Positive(t, rep.Machine.NumCPU)
	assert.NotEmpty(t, rep.Machine.GoVersion)
	assert.Equal(t, 5000, rep.Events)
	assert.Nil(t, rep.Scale)
	require.NotEmpty(t, rep.RawLimits)
	for _, l := range rep.RawLimits {
		assert.Positive(t, l.Value, l.Name)
		assert.NotEmpty(t, l.Unit, l.Name)
	}

	want := []string{
		"conditional append, 1 writer", "conditional append, 8 writers", "conditional append, 64 writers",
		"conditional append, 64 writers, no projection files",
		"unconditional batches of 100", "close with a projection backlog", "projector pace",
		"read 10 events by tag, appends of 1000", "read 10 events by tag, appends of 10", "read 10 events by tag, appends of 1",
		"read newest of a type", "full scan", "reopen",
	}
	if _, err := os.Stat("/proc/self/status"); err == nil {
		want = append(want, "resident memory after reopen")
	}
	var got []string
	for _, w := range rep.Workloads {
		got = append(got, w.Name)
		assert.Positive(t, w.Value, w.Name)
		assert.NotEmpty(t, w.Unit, w.Name)
		assert.Positive(t, w.Limit, w.Name)
		assert.NotEmpty(t, w.LimitName, w.Name)
		assert.InEpsilon(t, w.Value/w.Limit, w.Ratio, 1e-9, w.Name)
		assert.Zero(t, w.Failures, "%s: a condition failed", w.Name)
	}
	assert.ElementsMatch(t, want, got)

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "the run removes its stores")

	var full benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &full))
	var table bytes.Buffer
	full.print(&table)
	for _, name := range want {
		assert.Contains(t, table.String(), name)
	}
}

// --scale appends in ten slices and reopens the store at the first tenth
// and at the end (a tiny run: the real one is minutes long).
func TestBenchScale(t *testing.T) {
	dir := testdir.Tmpfs(t)
	code, out, errOut := runCmd("bench", "--scale", "--json", "--dir", dir, "--events", "2000")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var rep benchJSON
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "stdout: %s", out)
	require.NotNil(t, rep.Scale)
	require.Len(t, rep.Scale.Slices, 10)
	next := 1
	for _, s := range rep.Scale.Slices {
		assert.Equal(t, next, s.From)
		assert.Positive(t, s.EventsPerSec)
		next = s.To + 1
	}
	assert.Equal(t, 2001, next)
	assert.Positive(t, rep.Scale.Flatness)
	require.Len(t, rep.Scale.Reopens, 2)
	assert.Equal(t, 200, rep.Scale.Reopens[0].Events)
	assert.Equal(t, 2000, rep.Scale.Reopens[1].Events)
	for _, r := range rep.Scale.Reopens {
		assert.Positive(t, r.Seconds)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// A bad --events is a usage error that creates nothing; bench takes no
// argument.
func TestBenchUsageErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	for _, args := range [][]string{
		{"bench", "--events", "15", "--dir", dir},
		{"bench", "--events", "999", "--dir", dir},
		{"bench", "--events", "x", "--dir", dir},
		{"bench", "--dir", dir, "extra"},
	} {
		code, out, errOut := runCmd(args...)
		assert.Equal(t, 2, code, "%q", args)
		assert.Empty(t, out, "%q", args)
		assert.Contains(t, errOut, "possum bench", "%q", args)
		assert.NoDirExists(t, dir, "%q", args)
	}
	code, _, errOut := runCmd(reopenChild)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "want a store directory")
}
