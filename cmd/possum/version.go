package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/possumstore/possum/store"
)

func versionCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	return func(args []string, stdout, stderr io.Writer) error {
		printVersion(stdout)
		return nil
	}
}

// printVersion prints the module version possum was built from (as `go
// install` records it; "(devel)" for a build from a checkout, with its
// commit when the build recorded one), the Go version and platform, and the
// formats it writes and reads.
func printVersion(w io.Writer) {
	version, goVersion := "(unknown)", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		version, goVersion = bi.Main.Version, bi.GoVersion
		var revision, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = ", modified"
				}
			}
		}
		if revision != "" {
			version += fmt.Sprintf(" (commit %.12s%s)", revision, modified)
		}
	}
	fmt.Fprintf(w, "possum %s\n", version)
	fmt.Fprintf(w, "built with %s for %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "store format %d (reads 1 to %d; opening an older store for writing upgrades it)\n", store.FormatVersion, store.FormatVersion)
	fmt.Fprintf(w, "WAL frames version %d (reads 1 to %d)\n", store.WALFormatVersion, store.WALFormatVersion)
}
