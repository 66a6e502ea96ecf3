package recovery

import (
	"fmt"

	"github.com/possumstore/possum/storedir"
)

// LossLines names what the WAL repair of the report loses and repairs,
// record by record:
// "LOST position 4520317 (1 event of record 4521)", ranges where whole
// records or segments went, and per damaged segment what in it still
// verifies (kept as it was, and in its copy kept aside).
func (rep *Report) LossLines() []string {
	r := rep.WALRepair
	if r == nil {
		return nil
	}
	var out []string
	for _, d := range r.Damaged {
		where := fmt.Sprintf("damaged at offset %d: %s", d.Offset, d.Reason)
		switch {
		case d.Missing:
			where = "missing"
		case d.Unreadable != "":
			where = "unreadable: " + d.Unreadable
		}
		line := fmt.Sprintf("segment %s %s; still verifying in it: %s whole", d.Segment, where, plural(d.IntactRecords, "record"))
		kept := uint64(0)
		for _, rr := range d.Records {
			kept += rr.Kept
		}
		if kept > 0 {
			line += fmt.Sprintf(", and %s of its damaged records", plural(kept, "event"))
		}
		if d.CutBytes > 0 {
			line += fmt.Sprintf("; a torn tail of %d bytes (nothing acknowledged) cut", d.CutBytes)
		}
		out = append(out, line)
		for _, rr := range d.Records {
			n := rr.Last - rr.First + 1
			of := fmt.Sprintf("of record %d", rr.Record)
			if rr.Records > 1 {
				of = fmt.Sprintf("of records %d..%d", rr.Record, rr.Record+rr.Records-1)
			}
			for _, l := range rr.Lost {
				what := fmt.Sprintf("%s %s", plural(l.Count(), "event"), of)
				if l.From == rr.First && l.To == rr.Last && (rr.Whole || n > 1) {
					what = fmt.Sprintf("all %s %s: %s", plural(n, "event"), of, rr.Reason)
				}
				out = append(out, fmt.Sprintf("LOST %s (%s)", rangeText(l), what))
			}
			for _, l := range rr.Repaired {
				out = append(out, fmt.Sprintf("repaired %s (%s %s, from their event files)", rangeText(l), plural(l.Count(), "event"), of))
			}
		}
	}
	return out
}

// rangeText writes r as "position 7" or "positions 7..9".
func rangeText(r storedir.Range) string {
	if r.From == r.To {
		return fmt.Sprintf("position %d", r.From)
	}
	return fmt.Sprintf("positions %d..%d", r.From, r.To)
}
