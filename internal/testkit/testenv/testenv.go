// Package testenv reads the environment variables that scale possum's long
// tests (crash loops, soak iterations, store sizes), one way for every
// package: small by default, so that the suite runs in a minute or so;
// larger where CI's soak or a developer sets the variable.
//
// It is internal/testkit: tests only.
package testenv

import (
	"os"
	"strconv"
	"testing"
)

// Int returns the integer in the environment variable name, def when it is
// not set; a value that is not an integer fails the test.
func Int(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("%s=%q: not an integer", name, v)
	}
	return n
}

// Scaled is Int, with short as the default under go test -short.
func Scaled(tb testing.TB, name string, def, short int) int {
	tb.Helper()
	if testing.Short() {
		def = short
	}
	return Int(tb, name, def)
}
