package main

import (
	"fmt"
	"strings"
)

// value is one measured figure, or the reason there is none. A value
// without a figure is never rendered as a number: the table says why.
type value struct {
	v    float64
	unit string
	why  string // non-empty: not measured, and why
}

func got(v float64, unit string) value { return value{v: v, unit: unit} }

// missing is a figure that could not be measured.
func missing(format string, args ...any) value {
	why := fmt.Sprintf(format, args...)
	if why == "" {
		why = "unknown reason"
	}
	return value{why: why}
}

// ok reports whether x holds a figure. The zero value holds none, so a
// result slot nobody filled can never pass for a measurement of 0.
func (x value) ok() bool { return x.why == "" && x.unit != "" }

func (x value) String() string {
	if !x.ok() {
		if x.why == "" {
			return "not run: not measured"
		}
		return "not run: " + x.why
	}
	return fmtNum(x.v) + " " + x.unit
}

// fmtNum prints three significant figures for small numbers and no
// decimals past 100: the noise of this machine is far above 0.1%.
func fmtNum(v float64) string {
	a := v
	if a < 0 {
		a = -a
	}
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// target is the goal of a row. A ratio target bounds reelfs/baseline for
// one baseline; an absolute target bounds the reelfs figure itself.
type target struct {
	atMost  bool    // the bound is an upper bound (times, latencies)
	factor  float64 // the bound
	against int     // index of the baseline a ratio target compares with
	abs     bool    // the bound applies to the reelfs figure
	unit    string  // unit of an absolute bound
}

func ratioAtLeast(factor float64, against int) *target {
	return &target{factor: factor, against: against}
}

func ratioAtMost(factor float64, against int) *target {
	return &target{atMost: true, factor: factor, against: against}
}

func absAtLeast(bound float64, unit string) *target {
	return &target{factor: bound, abs: true, unit: unit}
}

// row is one benchmark: the reelfs figure and one figure per baseline of
// its table (a missing figure where a baseline does not apply).
type row struct {
	name   string
	reelfs value
	base   []value
	goal   *target
}

// table is one section's result.
type table struct {
	title     string
	baselines []string // column names, in the order of row.base
	rows      []row
	notes     []string // printed under the table
	notRun    string   // non-empty: the whole section did not run, and why
}

func (t *table) add(r row) { t.rows = append(t.rows, r) }

func (t *table) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
}

// ratio returns reelfs/baseline i of r, and whether both figures exist.
func (r row) ratio(i int) (float64, bool) {
	if i < 0 || i >= len(r.base) || !r.reelfs.ok() || !r.base[i].ok() || r.base[i].v == 0 {
		return 0, false
	}
	return r.reelfs.v / r.base[i].v, true
}

// targetText describes the goal of r in words of table t.
func (t *table) targetText(r row) string {
	g := r.goal
	if g == nil {
		return "—"
	}
	op := "≥"
	if g.atMost {
		op = "≤"
	}
	if g.abs {
		return fmt.Sprintf("%s %s %s", op, fmtNum(g.factor), g.unit)
	}
	name := "?"
	if g.against >= 0 && g.against < len(t.baselines) {
		name = t.baselines[g.against]
	}
	return fmt.Sprintf("%s %gx %s", op, g.factor, name)
}

// met says whether r meets its goal: "yes", "no", "—" without a goal, or
// "not run" when a figure it needs is missing.
func (r row) met() string {
	g := r.goal
	if g == nil {
		return "—"
	}
	var x float64
	if g.abs {
		if !r.reelfs.ok() {
			return "not run"
		}
		x = r.reelfs.v
	} else {
		var ok bool
		if x, ok = r.ratio(g.against); !ok {
			return "not run"
		}
	}
	if (g.atMost && x <= g.factor) || (!g.atMost && x >= g.factor) {
		return "yes"
	}
	return "no"
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	if r := []rune(s); len(r) > 160 {
		s = string(r[:157]) + "..."
	}
	return s
}

// markdown renders the table: benchmark | reelfs | one column per
// baseline | one ratio (reelfs/baseline) per baseline | target | met?
func (t *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", t.title)
	if t.notRun != "" {
		fmt.Fprintf(&b, "not run: %s\n", cell(t.notRun))
		for _, n := range t.notes {
			fmt.Fprintf(&b, "\n- %s", n)
		}
		if len(t.notes) > 0 {
			b.WriteString("\n")
		}
		return b.String()
	}
	head := []string{"benchmark", "reelfs"}
	head = append(head, t.baselines...)
	for _, n := range t.baselines {
		if len(t.baselines) == 1 {
			head = append(head, "ratio")
		} else {
			head = append(head, "ratio vs "+n)
		}
	}
	head = append(head, "target", "met?")
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(head)) + "|\n")
	for _, r := range t.rows {
		cells := []string{cell(r.name), cell(r.reelfs.String())}
		for i := range t.baselines {
			v := "—"
			if i < len(r.base) && (r.base[i].ok() || r.base[i].why != "n/a") {
				v = r.base[i].String()
			}
			cells = append(cells, cell(v))
		}
		for i := range t.baselines {
			v := "—"
			if x, ok := r.ratio(i); ok {
				v = fmt.Sprintf("%.2fx", x)
			}
			cells = append(cells, v)
		}
		cells = append(cells, cell(t.targetText(r)), r.met())
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	for i, n := range t.notes {
		if i == 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// setup runs the setup of one side of a table. When it fails, the full
// error goes into the notes once and every cell of that side shows the
// short error returned here.
func (t *table) setup(what string, f func() error) error {
	err := f()
	if err == nil {
		return nil
	}
	t.note("%s could not be set up: %v", what, err)
	return fmt.Errorf("%s setup failed (see notes)", what)
}

// notApplicable fills a baseline column that has no counterpart for a row.
func notApplicable() value { return value{why: "n/a"} }
