// Command possum works with possum event stores from the shell.
//
//	possum demo [DIR]                 append and read a few events (default DIR: ./possum-demo)
//	possum verify [--json] DIR        check a store (exit 0 consistent, 1 problems, 2 could not run)
//	possum recover [--json] [--dry-run] [--allow-data-loss] DIR
//	                                  repair a store (exit 0 repaired, 1 refused or, dry run, repairs needed)
//
// Exit codes: 0 success, 1 the command found a problem, 2 it could not run.
package main

import (
	"fmt"
	"io"
	"os"
)

type command struct {
	name, args, help string
	run              func(args []string, stdout, stderr io.Writer) error
}

var commands []command

func init() {
	commands = []command{
		{"demo", "[DIR]", "append and read a few events in DIR (default ./possum-demo)", runDemo},
		{"verify", "[--json] DIR", "check a closed store: WAL checksums, projection vs WAL (exit 0 ok, 1 problems)", runVerify},
		{"recover", "[--json] [--dry-run] [--allow-data-loss] DIR", "repair a closed store (exit 1: refused, data loss)", runRecover},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit code other than 2 out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		if err == nil {
			return 0
		}
		if e, ok := err.(exitError); ok {
			return e.code
		}
		fmt.Fprintf(stderr, "possum %s: %v\n", c.name, err)
		return 2
	}
	fmt.Fprintf(stderr, "possum: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: possum COMMAND [ARGS]")
	for _, c := range commands {
		fmt.Fprintf(w, "  %s %s\n      %s\n", c.name, c.args, c.help)
	}
}
