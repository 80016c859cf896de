package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// column is one measured value shown per arm.
type column struct {
	key, head string
	format    func(float64) string
}

func fCount(v float64) string { return fmt.Sprintf("%.0f", v) }
func fPct(v float64) string   { return fmt.Sprintf("%.2f%%", 100*v) }
func fMs(v float64) string    { return fmt.Sprintf("%.1f ms", v) }
func fX(v float64) string     { return fmt.Sprintf("%.2f×", v) }
func fRps(v float64) string   { return fmt.Sprintf("%.0f/s", v) }

// commonColumns are shown for every scenario, before its own.
var commonColumns = []column{
	{kRequests, "requests", fCount},
	{kSuccess, "success", fPct},
	{kP50, "p50", fMs},
	{kP99, "p99", fMs},
	{kP999, "p99.9", fMs},
	{kMax, "max", fMs},
	{kLoad, "load at replicas", fRps},
	{kLoadX, "× offered", fX},
}

// table is one scenario's result: a row per arm, then the verdicts.
type table struct {
	title string   // scenario name
	about []string // fault, load, window: the lines under the title
	cols  []column // the scenario's own, after commonColumns
	arms  []string // in the order shown; the first is Shoal
	rows  map[string]metrics
	goals []goal
	notes []string
}

func (t *table) columns() []column { return append(append([]column{}, commonColumns...), t.cols...) }

func (t *table) cells(arm string) []string {
	out := []string{arm}
	m, ok := t.rows[arm]
	for _, c := range t.columns() {
		if !ok {
			out = append(out, "-")
			continue
		}
		out = append(out, c.format(m[c.key]))
	}
	return out
}

func (t *table) verdicts() []string {
	var out []string
	for _, g := range t.goals {
		out = append(out, g.line(t.arms, t.rows))
	}
	return out
}

// text writes t for a terminal.
func (t *table) text(w io.Writer) {
	fmt.Fprintf(w, "\n== %s ==\n", t.title)
	for _, a := range t.about {
		fmt.Fprintln(w, "  "+a)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"arm"}
	for _, c := range t.columns() {
		head = append(head, c.head)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, arm := range t.arms {
		fmt.Fprintln(tw, strings.Join(t.cells(arm), "\t")+"\t")
	}
	tw.Flush()
	for _, v := range t.verdicts() {
		fmt.Fprintln(w, "  "+v)
	}
	for _, n := range t.notes {
		fmt.Fprintln(w, "  note: "+n)
	}
}

// markdown writes t for docs/BENCHMARKS.md.
func (t *table) markdown(w io.Writer) {
	fmt.Fprintf(w, "\n### %s\n\n", t.title)
	for _, a := range t.about {
		fmt.Fprintf(w, "%s  \n", a)
	}
	head := []string{"arm"}
	for _, c := range t.columns() {
		head = append(head, c.head)
	}
	fmt.Fprintf(w, "\n| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, arm := range t.arms {
		fmt.Fprintf(w, "| %s |\n", strings.Join(t.cells(arm), " | "))
	}
	fmt.Fprintln(w)
	for _, v := range t.verdicts() {
		fmt.Fprintf(w, "- %s\n", v)
	}
	for _, n := range t.notes {
		fmt.Fprintf(w, "- note: %s\n", n)
	}
}
