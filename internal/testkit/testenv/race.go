//go:build race

package testenv

// Race is true when the tests were built with the race detector: the
// tests that build stores of realistic size run small then, or not at all.
const Race = true
