package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/possumstore/possum/recovery"
	"github.com/possumstore/possum/store"
	"github.com/possumstore/possum/storedir"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func verifyCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	asJSON := fs.Bool("json", false, "print the report as JSON")
	return func(args []string, stdout, stderr io.Writer) error {
		return runVerify(args[0], *asJSON, stdout)
	}
}

func runVerify(dir string, asJSON bool, stdout io.Writer) error {
	rep, err := recovery.Verify(dir, &recovery.Options{Progress: progress(asJSON)})
	if err != nil {
		return err
	}
	if err := printReport(stdout, "verify", rep, asJSON, false); err != nil {
		return err
	}
	if !rep.Consistent() {
		return exitError{1}
	}
	return nil
}

func recoverCommand(fs *flag.FlagSet) func(args []string, stdout, stderr io.Writer) error {
	asJSON := fs.Bool("json", false, "print the report as JSON")
	dryRun := fs.Bool("dry-run", false, "report what would be repaired, change nothing (exit 1 if anything would be)")
	allowLoss := fs.Bool("allow-data-loss", false, "repair WAL damage that loses events: exactly those whose bytes fail their checksums and that no event file repairs, each position kept by a lost marker (damaged files are kept aside, the loss recorded in LOST)")
	return func(args []string, stdout, stderr io.Writer) error {
		return runRecover(args[0], *asJSON, *dryRun, *allowLoss, stdout, stderr)
	}
}

func runRecover(dir string, asJSON, dryRun, allowLoss bool, stdout, stderr io.Writer) error {
	rep, err := recovery.Repair(dir, &recovery.Options{Progress: progress(asJSON), DryRun: dryRun, AllowDataLoss: allowLoss})
	if errors.Is(err, recovery.ErrDataLoss) && rep != nil {
		if perr := printReport(stdout, "recover", rep, asJSON, dryRun); perr != nil {
			return perr
		}
		fmt.Fprintf(stderr, "possum recover: %v\npossum recover: %s\n", err, closeFirst(dir, rep, "rerun with --allow-data-loss to repair it, losing exactly those events"))
		return exitError{1}
	}
	if errors.Is(err, store.ErrLocked) {
		// Only a repair takes the exclusive lock: verify and a dry run
		// check beside a writer.
		return fmt.Errorf("%s is open in %s; nothing was changed: a repair needs the store closed. Stop that process, then run possum recover %s (a writer's Open repairs a torn WAL tail and the projection by itself); possum verify %s and possum recover --dry-run %s check the store while it runs",
			dir, writerOf(dir).process(), dir, dir, dir)
	}
	if err != nil {
		return err
	}
	if err := printReport(stdout, "recover", rep, asJSON, dryRun); err != nil {
		return err
	}
	if dryRun && !rep.Consistent() {
		if rep.BesideWriter && !asJSON {
			fmt.Fprintf(stderr, "possum recover: %s\n", closeFirst(dir, rep, "run possum recover "+dir))
		}
		return exitError{1}
	}
	return nil
}

// closeFirst is what to do next after a dry run found repairs to make:
// then, when no writer has the store open; beside one, stop it first.
func closeFirst(dir string, rep *recovery.Report, then string) string {
	if !rep.BesideWriter {
		return then
	}
	return fmt.Sprintf("the store is open in %s: a repair needs it closed; stop that process, then %s", writerOf(dir).process(), then)
}

// progress returns a progress bar callback on a terminal, nil elsewhere:
// one bar per step of the work (reading the WAL, checking events).
func progress(quiet bool) func(what string, done, total uint64) {
	if quiet || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	var bar *progressbar.ProgressBar
	step := ""
	return func(what string, done, total uint64) {
		if bar == nil || what != step {
			if bar != nil {
				_ = bar.Finish()
			}
			step = what
			bar = progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionSetDescription(what), progressbar.OptionShowCount(),
				progressbar.OptionShowBytes(what != "checking events"), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
		}
		if int64(total) > bar.GetMax64() {
			bar.ChangeMax64(int64(total))
		}
		_ = bar.Set64(int64(done))
	}
}

func printReport(w io.Writer, verb string, rep *recovery.Report, asJSON, dryRun bool) error {
	repairVerb := "done"
	if dryRun {
		repairVerb = "to do"
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	state := "consistent"
	if !rep.Consistent() {
		n := 0
		for _, c := range rep.Counts {
			n += c
		}
		state = fmt.Sprintf("%d problems", n)
	}
	if rep.BesideWriter {
		// A verify beside a writer checks what it had acknowledged.
		fmt.Fprintf(w, "possum %s %s: %s up to position %d, beside the writer that has it open%s: what it had acknowledged when the check began (%d records in %d segments, %s)\n",
			verb, rep.Dir, state, rep.Head, writerOf(rep.Dir).pid(), rep.WAL.Records, rep.WAL.Segments, rep.Elapsed.Round(1e6))
	} else {
		fmt.Fprintf(w, "possum %s %s: %s (WAL head %d, %d records in %d segments, %s)\n",
			verb, rep.Dir, state, rep.Head, rep.WAL.Records, rep.WAL.Segments, rep.Elapsed.Round(1e6))
	}
	if rep.Lock != "" && !rep.BesideWriter { // the line above says it took none
		fmt.Fprintf(w, "  lock: %s\n", rep.Lock)
	}
	if rep.Pending > 0 {
		who := "the next Open projects them"
		if rep.BesideWriter {
			who = "the writer is projecting them"
		}
		fmt.Fprintf(w, "  projection: checkpoint at %d, %d positions after it not yet projected (not a problem: %s)\n", rep.Checkpoint, rep.Pending, who)
	}
	kinds := make([]string, 0, len(rep.Counts))
	for k := range rep.Counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-20s %d\n", k, rep.Counts[k])
	}
	for _, p := range rep.Problems {
		loss := ""
		if p.DataLoss {
			loss = " [DATA LOSS]"
		}
		fmt.Fprintf(w, "  - %s: %s%s\n", p.Path, p.Detail, loss)
	}
	for _, r := range rep.Repairs {
		fmt.Fprintf(w, "  %s: %s\n", repairVerb, r)
	}
	if r := rep.WALRepair; r != nil {
		if r.LostEvents > 0 && !r.Written {
			fmt.Fprintf(w, "  a repair (possum recover --allow-data-loss) loses exactly %s, each position kept by a lost marker:\n", plural(int(r.LostEvents), "event"))
		}
		for _, l := range rep.LossLines() {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if rep.MarkerCount > 0 {
		recorded := "LOST lists them"
		if !slices.Equal(rep.Markers, rep.Recorded) {
			recorded = "LOST lists " + storedir.FormatRanges(rep.Recorded)
		}
		fmt.Fprintf(w, "  lost positions in the store: %s (%s; %s)\n", storedir.FormatRanges(rep.Markers), plural(int(rep.MarkerCount), "position"), recorded)
	}
	for _, k := range rep.Kept {
		fmt.Fprintf(w, "  kept aside: %s\n", k)
	}
	return nil
}
