package experiment

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Verdicts.
const (
	// Held: every check of the hypothesis passed.
	Held = "held"
	// Failed: the run went to its end, and a check failed.
	Failed = "failed"
	// Aborted: an abort condition stopped the run early.
	Aborted = "aborted"
)

// Report is the result of a run.
type Report struct {
	Experiment  string `json:"experiment"`
	Description string `json:"description,omitempty"`
	Verdict     string `json:"verdict"` // Held, Failed or Aborted
	// Reason says why it failed or was aborted.
	Reason string `json:"reason,omitempty"`
	// Fault is what was done: the request-scoped fault, or the monkey.
	Fault   string    `json:"fault"`
	Traffic string    `json:"traffic"` // the populations
	Started time.Time `json:"started"`
	FaultAt time.Time `json:"fault_at"` // when the fault began
	Ended   time.Time `json:"ended"`    // when it was removed
	// AbortedAfter is the time from the fault's start to the abort.
	AbortedAfter time.Duration `json:"aborted_after,omitempty"`
	Checks       []CheckResult `json:"checks"`
	// Requests are the synthetic requests of each cohort, or the live
	// requests the gateways put in each.
	Requests map[string]int `json:"requests,omitempty"`
	// Actions are the monkey's, with instance faults.
	Actions []string `json:"actions,omitempty"`
}

// CheckResult is one check of the hypothesis (or the abort condition
// that stopped the run).
type CheckResult struct {
	Name   string `json:"name"`
	Metric string `json:"metric"`
	Unit   string `json:"unit,omitempty"` // ratio, seconds, or "" for an expression
	// Control and Experiment are the two values; null without data.
	Control    Number `json:"control"`
	Experiment Number `json:"experiment"`
	Difference Number `json:"difference"` // experiment − control
	Tolerance  string `json:"tolerance"`  // the rule the experiment's value must keep
	Held       bool   `json:"held"`
	Abort      bool   `json:"abort,omitempty"` // an abort condition, not the hypothesis
	Note       string `json:"note,omitempty"`  // e.g. why there is no value
}

// Number is a value that may be missing (NaN): null in JSON.
type Number float64

// MarshalJSON writes NaN and infinities as null.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// UnmarshalJSON reads null as NaN.
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = Number(f)
	return err
}

// OK reports whether the hypothesis held: the exit status of
// `shoal experiment run` is 0 only then.
func (r *Report) OK() bool { return r.Verdict == Held }

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for a person: what ran, a row per check
// (control, experiment, difference, tolerance, result), and the verdict.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "experiment %s", r.Experiment)
	if r.Description != "" {
		fmt.Fprintf(w, ": %s", r.Description)
	}
	fmt.Fprintf(w, "\nfault: %s\ntraffic: %s\n", r.Fault, r.Traffic)
	if len(r.Requests) > 0 {
		fmt.Fprintf(w, "requests: control %d, experiment %d\n", r.Requests["control"], r.Requests["experiment"])
	}
	for _, a := range r.Actions {
		fmt.Fprintf(w, "  %s\n", a)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tCONTROL\tEXPERIMENT\tDIFFERENCE\tTOLERANCE\tRESULT")
	for _, c := range r.Checks {
		result := "ok"
		if !c.Held {
			result = "FAILED"
		}
		if c.Abort {
			result = "ABORT"
		}
		if c.Note != "" {
			result += " (" + c.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, format(c.Control, c.Unit, false), format(c.Experiment, c.Unit, false),
			format(c.Difference, c.Unit, true), c.Tolerance, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nverdict: %s", strings.ToUpper(r.Verdict))
	switch {
	case r.Verdict == Aborted:
		fmt.Fprintf(w, " %v after the fault began: %s", r.AbortedAfter.Round(100*time.Millisecond), r.Reason)
	case r.Reason != "":
		fmt.Fprintf(w, ": %s", r.Reason)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// format writes a value in its unit; signed for a difference.
func format(n Number, unit string, signed bool) string {
	v := float64(n)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	sign := ""
	if signed && v >= 0 {
		sign = "+"
	}
	switch unit {
	case "ratio":
		return sign + strconv.FormatFloat(v*100, 'f', 2, 64) + "%"
	case "seconds":
		return sign + (time.Duration(v * float64(time.Second))).Round(time.Millisecond).String()
	}
	return sign + formatValue(v)
}
