package main

import (
	"fmt"
	"io"
)

// benchReport is what `possum bench --json` prints.
type benchReport struct {
	Machine        benchMachine  `json:"machine"`
	Events         int           `json:"events"`
	Dir            string        `json:"dir"`
	ElapsedSeconds float64       `json:"elapsedSeconds"`
	RawLimits      []rawLimit    `json:"rawLimits"`
	Workloads      []benchResult `json:"workloads,omitempty"`
	Scale          *scaleReport  `json:"scale,omitempty"`
	Notes          []string      `json:"notes"`
}

type benchMachine struct {
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	NumCPU    int    `json:"numCPU"`
	GoVersion string `json:"goVersion"`
}

// rawLimit is one measurement of the machine with nothing of possum in the
// way (package rawdisk).
type rawLimit struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Seconds float64 `json:"seconds"` // how long it was measured for
	For     string  `json:"for"`     // the workload it is the limit of
}

// benchResult is one workload next to its limit: Ratio = Value / Limit.
type benchResult struct {
	Name      string  `json:"name"`
	Value     float64 `json:"value"`
	Unit      string  `json:"unit"`
	Limit     float64 `json:"limit"`
	LimitName string  `json:"limitName"`
	Ratio     float64 `json:"ratio"`
	// HigherIsBetter is false for times and memory.
	HigherIsBetter bool    `json:"higherIsBetter"`
	Ops            int     `json:"ops,omitempty"`
	Events         int     `json:"events,omitempty"`
	Seconds        float64 `json:"seconds,omitempty"`
	P50Micros      float64 `json:"p50Micros,omitempty"`
	P99Micros      float64 `json:"p99Micros,omitempty"`
	// Failures counts failed conditions where none may fail: a bug.
	Failures int    `json:"failures,omitempty"`
	Note     string `json:"note,omitempty"`
}

// scaleReport is what --scale measured.
type scaleReport struct {
	Batch  int          `json:"batch"`
	Slices []scaleSlice `json:"slices"`
	// Flatness is the last slice's rate over the first's: 1 is flat.
	Flatness float64       `json:"flatness"`
	Reopens  []scaleReopen `json:"reopens"`
}

type scaleSlice struct {
	From         int     `json:"from"` // first position of the slice
	To           int     `json:"to"`   // last position of the slice
	EventsPerSec float64 `json:"eventsPerSecond"`
	Seconds      float64 `json:"seconds"`
}

type scaleReopen struct {
	Events   int     `json:"events"`
	Seconds  float64 `json:"seconds"`
	RSSBytes int64   `json:"rssBytes"` // 0: unknown on this platform
}

// print writes the report as tables.
func (r *benchReport) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "possum bench: %d events, %s/%s, %d CPUs, %s, in %s (%.0fs)\n\n",
		r.Events, m.GOOS, m.GOARCH, m.NumCPU, m.GoVersion, r.Dir, r.ElapsedSeconds)
	if len(r.Workloads) > 0 {
		width := len("workload")
		for _, x := range r.Workloads {
			width = max(width, len(x.Name))
		}
		row := "%-*s %12s %-10s %12s %8s %9s %9s\n"
		fmt.Fprintf(w, row, width, "workload", "value", "unit", "limit", "ratio", "p50 µs", "p99 µs")
		for _, x := range r.Workloads {
			ratio := fmt.Sprintf("%.2f×", x.Ratio)
			if !x.HigherIsBetter {
				ratio += "↓"
			}
			fmt.Fprintf(w, row, width, x.Name, num(x.Value), x.Unit, num(x.Limit), ratio, micros(x.P50Micros), micros(x.P99Micros))
		}
		fmt.Fprintln(w, "ratio = value ÷ limit; ↓: lower is better")
		fmt.Fprintln(w, "\nlimits:")
		for _, x := range r.Workloads {
			fmt.Fprintf(w, "  %-*s %s\n", width, x.Name, x.LimitName)
			if x.Failures > 0 {
				fmt.Fprintf(w, "  %-*s %d CONDITIONS FAILED (a bug: each writer owns its tag)\n", width, "", x.Failures)
			}
		}
	}
	if sc := r.Scale; sc != nil {
		fmt.Fprintf(w, "durable appends of %d events, one writer:\n", sc.Batch)
		row := "%22s %12s %9s\n"
		fmt.Fprintf(w, row, "positions", "events/s", "seconds")
		for _, s := range sc.Slices {
			fmt.Fprintf(w, row, fmt.Sprintf("%d..%d", s.From, s.To), num(s.EventsPerSec), fmt.Sprintf("%.1f", s.Seconds))
		}
		fmt.Fprintf(w, "last tenth ÷ first tenth: %.2f× (1: flat)\n", sc.Flatness)
		for _, o := range sc.Reopens {
			rss := "unknown"
			if o.RSSBytes > 0 {
				rss = fmt.Sprintf("%.0f MiB", float64(o.RSSBytes)/(1<<20))
			}
			fmt.Fprintf(w, "reopen at %d events: %.3fs, resident memory %s\n", o.Events, o.Seconds, rss)
		}
	}
	fmt.Fprintln(w, "\nraw limits measured in this run:")
	for _, l := range r.RawLimits {
		fmt.Fprintf(w, "  %-58s %14s %-8s (%.2fs, for %s)\n", l.Name, num(l.Value), l.Unit, l.Seconds, l.For)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// num formats a measurement with three significant digits or so.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func micros(v float64) string {
	if v == 0 {
		return ""
	}
	return num(v)
}
