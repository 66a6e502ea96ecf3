// Command possum works with possum event stores from the shell.
//
//	possum demo [DIR]        a course enrolment in DIR (default ./possum-demo): two students
//	                         race for the last seat and the store's append condition rejects one
//	possum read DIR [QUERY] [--from N] [--limit N] [--backwards] [--table]
//	                         print events: NDJSON (the bytes of the event files), a table on a terminal
//	possum tail DIR [QUERY] [--from N] [--follow] [--cursor NAME|PATH]
//	                         print events as NDJSON; --follow for new ones (Ctrl-C exits 0);
//	                         --cursor resumes after a saved position (one tail per cursor)
//	possum append DIR --type T [--tag K]... [--data JSON] [--meta K=V]... [--id ID] [--timestamp T] [--if-none-match [QUERY] [--after N]]
//	                         append one event, on a condition if asked; prints its position
//	possum append DIR [-] [--stdin] [--batch N] < events.ndjson
//	                         append NDJSON events (one a line: type, tags, data, metadata, id, timestamp) in batches
//	possum stats DIR [--json] [--top N]
//	                         positions, projection lag, events by type, top tags, size on disk
//	possum verify [--json] DIR
//	                         check a store, closed or beside the writer that has it open
//	                         (exit 0 consistent, 1 problems)
//	possum recover [--json] [--dry-run] [--allow-data-loss] DIR
//	                         repair a closed store (exit 0 repaired, 1 refused or, dry run, repairs
//	                         needed; --dry-run also beside a writer)
//	possum import-opossum SRC DEST [--fill-gaps] [--json]
//	                         an Opossum store, or a root of several, into new possum stores
//	possum backup DIR DEST [--json]
//	                         copy a running store into DEST (what its writer acknowledged);
//	                         again into the same DEST copies what is new
//	possum serve DIR [--listen ADDR] [--token T]
//	                         serve a store to other processes over HTTP on DIR/possum.sock, and TCP with --listen
//	possum serve DIR --nats URL[,URL...] --stream NAME [--subject P] [--replicas N] [--listen ADDR]
//	                         serve a node of a store kept in a NATS JetStream stream, DIR its replica
//	possum push DIR --nats URL --stream NAME [--json]
//	                         seed a new stream with a store's events (positions, timestamps, ids kept)
//	possum bench [--events N] [--dir D] [--json] [--scale]
//	                         measure possum next to this machine's limits (minutes at 1M events)
//	possum version           possum's version, its Go version, the formats it writes and reads
//	                         (also possum --version)
//	possum COMMAND --help    a command's usage and flags (also -h, possum help COMMAND)
//
// QUERY is the query flags of read, tail and append's condition: --type T
// (repeat: any of these types) and --tag K (repeat: all of these tags) make
// one query item; --or starts the next; an event matching any item matches.
// No query flags: every event.
//
// read, tail and stats follow a store (store.Follow): they never lock nor
// change it (tail --cursor writes its cursor alone), so they work while
// another process writes it. read --from and tail --from both start at the
// position given, inclusive; 0, the default, is the first. verify and
// recover --dry-run check a store another process has open beside it, what
// its writer had acknowledged, without a lock; recover itself needs the
// store closed. append opens the store as its writer, or appends through
// the process that holds it when that process serves it (possum serve);
// append and demo refuse a store another process holds without serving it,
// naming that process where the platform tells (Linux).
//
// Flags may come before or after DIR, in any order; "--" ends the flags, so
// that "possum verify -- -odd-dir" checks a directory named -odd-dir. A flag
// is written --name (or -name); messages write it --name.
// Help, when asked for, goes to stdout; usage errors print a message and the
// usage to stderr.
//
// Exit codes: 0 success; 1 the command found a problem: verify found damage,
// recover refused, append's condition failed (nothing written) or an NDJSON
// import stopped at a bad line after appending the lines before it; 2 it
// could not run: bad usage or input, no store, a store another process has
// open (for recover; append when it is not served), a cursor another tail
// holds or that cannot be saved, or a failure on the way. A usage error
// never touches the store, and append exits 2 only when it appended
// nothing.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

type command struct {
	// operands are the positional arguments as the usage line shows them;
	// the flags come from setup. help is one line for the list of
	// commands; more, when set, follows the flags in the command's --help.
	name, operands, help, more string
	// minArgs and maxArgs bound the number of positional arguments.
	minArgs, maxArgs int
	// setup defines the command's flags on fs and returns the function
	// that runs the command on its positional arguments once fs is parsed.
	setup func(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error
}

var commands []command

func init() {
	commands = []command{
		{name: "demo", operands: "[DIR]", help: "a course enrolment in DIR (default ./possum-demo): two students race for the last seat and the store's append condition rejects one",
			minArgs: 0, maxArgs: 1, setup: demoCommand},
		{name: "read", operands: "DIR", help: "print a store's events: NDJSON (the keys of its event files), a table on a terminal; whether or not a writer has it open",
			more: queryHelp, minArgs: 1, maxArgs: 1, setup: readCommand},
		{name: "tail", operands: "DIR", help: "print a store's events as NDJSON, the keys of its event files; --follow for new ones, whether or not a writer has it open",
			more: queryHelp, minArgs: 1, maxArgs: 1, setup: tailCommand},
		{name: "append", operands: "DIR [-]", help: "append one event from flags, on a condition if asked, or many as NDJSON from stdin (exit 1: condition failed)",
			more: appendHelp, minArgs: 1, maxArgs: 2, setup: appendCommand},
		{name: "stats", operands: "DIR", help: "print a store's positions, projection lag, events by type, most used tags and size on disk, whether or not a writer has it open",
			minArgs: 1, maxArgs: 1, setup: statsCommand},
		{name: "verify", operands: "DIR", help: "check a store, closed or beside the writer that has it open (what it acknowledged): WAL checksums, projection vs WAL (exit 0 ok, 1 problems)",
			minArgs: 1, maxArgs: 1, setup: verifyCommand},
		{name: "recover", operands: "DIR", help: "repair a closed store (exit 1: refused, data loss); --dry-run also beside a writer",
			minArgs: 1, maxArgs: 1, setup: recoverCommand},
		{name: "backup", operands: "DIR DEST", help: "copy a store into DEST while it runs (what its writer acknowledged), or bring an earlier backup there up to date",
			more: backupHelp, minArgs: 2, maxArgs: 2, setup: backupCommand},
		{name: "serve", operands: "DIR", help: "serve a store to other processes over HTTP on DIR/possum.sock (mode 0600), and over TCP with --listen; with --nats, a node of a store kept in a NATS JetStream stream; until interrupted (exit 0)",
			minArgs: 1, maxArgs: 1, setup: serveCommand},
		{name: "push", operands: "DIR", help: "copy a store's events into a NATS JetStream stream (positions, timestamps and ids kept), to serve it beyond one machine with possum serve --nats",
			more: pushHelp, minArgs: 1, maxArgs: 1, setup: pushCommand},
		{name: "version", help: "print possum's version, the Go version it was built with, and the store and WAL formats it writes and reads (also possum --version)",
			minArgs: 0, maxArgs: 0, setup: versionCommand},
		{name: "import-opossum", operands: "SRC DEST", help: "import an Opossum store, or a root of several, into a new possum store DEST, every position, timestamp and payload byte kept (exit 1: refused, nothing written)",
			more: importOpossumHelp, minArgs: 2, maxArgs: 2, setup: importOpossumCommand},
		{name: "bench", help: "measure possum on fresh stores next to this machine's own limits, measured in the same run (minutes at the default 1M events)",
			minArgs: 0, maxArgs: 0, setup: benchCommand},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries an exit code other than 2 out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		switch len(args) {
		case 1:
			usage(stdout)
			return 0
		case 2: // possum help COMMAND
			if c, ok := lookup(args[1]); ok {
				fs := c.flagSet()
				c.setup(fs)
				c.usage(stdout, fs)
				return 0
			}
			fmt.Fprintf(stderr, "possum: unknown command %q\n", args[1])
		default:
			fmt.Fprintf(stderr, "possum: %s takes at most one argument, a command\n", args[0])
		}
		usage(stderr)
		return 2
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	if args[0] == reopenChild {
		return runReopenChild(args[1:], stdout, stderr)
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "possum: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// flagSet returns a flag set for c that reports errors but prints nothing:
// run prints the messages and the usage.
func (c command) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// run parses args, flags anywhere, and runs the command.
func (c command) run(args []string, stdout, stderr io.Writer) int {
	fs := c.flagSet()
	do := c.setup(fs)
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(stdout, fs)
		return 0
	}
	if err == nil && (len(pos) < c.minArgs || len(pos) > c.maxArgs) {
		got := "none"
		if len(pos) > 0 {
			got = fmt.Sprintf("%d: %q", len(pos), pos)
		}
		err = fmt.Errorf("%s, got %s", c.wantArgs(), got)
	}
	if err != nil {
		fmt.Fprintf(stderr, "possum %s: %v\n", c.name, err)
		c.usage(stderr, fs)
		return 2
	}
	err = do(pos, stdout, stderr)
	if err == nil {
		return 0
	}
	if e, ok := err.(exitError); ok {
		return e.code
	}
	fmt.Fprintf(stderr, "possum %s: %v\n", c.name, err)
	return 2
}

func (c command) wantArgs() string {
	arguments := func(n int) string {
		if n == 1 {
			return "1 argument"
		}
		return fmt.Sprintf("%d arguments", n)
	}
	switch {
	case c.maxArgs == 0:
		return "takes no arguments"
	case c.minArgs == c.maxArgs:
		return fmt.Sprintf("want exactly %s (%s)", arguments(c.minArgs), c.operands)
	case c.minArgs == 0:
		return fmt.Sprintf("want at most %s (%s)", arguments(c.maxArgs), c.operands)
	default:
		return fmt.Sprintf("want %d to %s (%s)", c.minArgs, arguments(c.maxArgs), c.operands)
	}
}

// line is the command line of c: its name, flags and operands.
func (c command) line(fs *flag.FlagSet) string {
	parts := []string{"possum", c.name}
	fs.VisitAll(func(f *flag.Flag) {
		parts = append(parts, "["+flagArg(f)+"]")
	})
	if c.operands != "" {
		parts = append(parts, c.operands)
	}
	return strings.Join(parts, " ")
}

// flagArg is how a flag is written: --name, or --name VALUE if it takes one.
func flagArg(f *flag.Flag) string {
	name, _ := flag.UnquoteUsage(f)
	if name == "" {
		return "--" + f.Name
	}
	return "--" + f.Name + " " + name
}

// usage prints the command line of c, what it does, its flags with their
// defaults, and what more there is to say.
func (c command) usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n  %s\n", c.line(fs), c.help)
	fmt.Fprintln(w, "flags, before or after the arguments (-- ends them):")
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(w, "  %-20s %s\n", flagArg(f), flagHelp(f))
	})
	fmt.Fprintf(w, "  %-20s %s\n", "-h, --help", "print this help")
	if c.more != "" {
		fmt.Fprintln(w, c.more)
	}
}

// flagHelp is what a flag does, and its default unless that is the zero
// value (as the flag package prints them).
func flagHelp(f *flag.Flag) string {
	_, use := flag.UnquoteUsage(f)
	switch f.DefValue {
	case "", "0", "false", "[]":
		return use
	}
	return fmt.Sprintf("%s (default %s)", use, f.DefValue)
}

// usage prints the command lines of every command.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: possum COMMAND [ARGS]")
	for _, c := range commands {
		fs := c.flagSet()
		c.setup(fs)
		fmt.Fprintf(w, "  %s\n      %s\n", strings.TrimPrefix(c.line(fs), "possum "), c.help)
	}
	fmt.Fprintln(w, "possum COMMAND --help prints a command's flags; flags may also follow the arguments")
	fmt.Fprintln(w, "exit 0 done; 1 the command found a problem (see its help); 2 it could not run (a usage error changes nothing)")
}

// parseArgs parses args with fs, allowing flags before, between and after
// the positional arguments, which it returns in order. "--" ends the flags:
// everything after it is positional. A flag is written --name or -name; one
// that is not boolean takes its value from the same argument (--name=value)
// or the next (--name value), even when that next argument starts with "-".
// -h, -help and --help return flag.ErrHelp. It parses itself, not with
// fs.Parse, so that its messages write flags as the usage does: --name.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	pos := []string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' { // "-" alone is an argument, as with the flag package
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		if name == "" || name[0] == '-' {
			return nil, fmt.Errorf("bad flag syntax: %s", a)
		}
		f := fs.Lookup(name)
		if f == nil && (name == "h" || name == "help") {
			return nil, flag.ErrHelp
		}
		if f == nil {
			return nil, fmt.Errorf("unknown flag --%s", name)
		}
		switch {
		case hasValue:
		case isBool(f):
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			return nil, fmt.Errorf("--%s needs a value: %s", name, flagArg(f))
		}
		if err := fs.Set(name, value); err != nil {
			return nil, fmt.Errorf("invalid value %q for --%s: %s", value, name, valueError(f, err))
		}
	}
	return pos, nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// valueError says what a flag's value must be when the flag package's
// own values refuse one ("parse error"); other errors say it themselves.
func valueError(f *flag.Flag, err error) string {
	if err.Error() != "parse error" && err.Error() != "value out of range" {
		return err.Error()
	}
	want := map[string]string{
		"*flag.boolValue":     "true or false",
		"*flag.intValue":      "a whole number",
		"*flag.int64Value":    "a whole number",
		"*flag.uintValue":     "a whole number, 0 or more",
		"*flag.uint64Value":   "a whole number, 0 or more",
		"*flag.durationValue": "a duration such as 1m30s",
	}[fmt.Sprintf("%T", f.Value)]
	if want == "" {
		return err.Error()
	}
	if err.Error() == "value out of range" {
		return "out of range, want " + want
	}
	return "want " + want
}
