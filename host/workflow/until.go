package workflow

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// TimeExpr is a timer's `until:` expression (the expr language, as `when:`
// uses), compiled and type-checked when the file is parsed. It sees the
// same names as a condition (`input`, `needs`, each need by its name) and
// must give a time: a `date(...)` (with `duration(...)` arithmetic), or a
// string holding an RFC 3339 time. Dates without a zone are UTC. now() is
// not available: the expression is evaluated again whenever the node is
// looked at, so a due time must follow from the run's input and its
// needs' outputs alone (a wait relative to the node becoming ready is
// `sleep`).
type TimeExpr struct {
	// Source is the expression as written.
	Source  string
	program *vm.Program
	idents  []string
}

var (
	timeType   = reflect.TypeOf(time.Time{})
	stringType = reflect.TypeOf("")
)

// pendingUntil is an until value that is not an RFC 3339 time: it is
// compiled as an expression once every node's needs are known.
type pendingUntil struct {
	n *Node
	v *yaml.Node
}

// compileUntil compiles the `until` expression v of timer node n.
func (p *parser) compileUntil(n *Node, v *yaml.Node) {
	src := v.Value
	env, idents := conditionEnv(n.Needs)
	prog, err := expr.Compile(src, expr.Env(env), expr.DisableBuiltin("now"), expr.Timezone("UTC"))
	if err == nil {
		if t := prog.Node().Type(); t != timeType && t != stringType && t.Kind() != reflect.Interface {
			err = fmt.Errorf("it gives %s, want a time: date(...) or an RFC 3339 string", t)
		}
	}
	if err != nil {
		line, msg := exprError(v, err)
		if strings.Contains(src, "now(") {
			msg += " (now() is not available in until: use sleep for a wait from when the node becomes ready)"
		}
		p.errf(line, "node %q: until: %q is not an RFC 3339 time (like 2026-01-02T15:04:05Z) nor an expression giving one: %s",
			n.Name, src, msg)
		return
	}
	n.Timer.UntilExpr = &TimeExpr{Source: src, program: prog, idents: idents}
}

// Eval evaluates the expression over the run's input and the journaled
// results of the node's needs. An error says what the value was when it
// is not a time.
func (x *TimeExpr) Eval(input []byte, needs []string, results map[string]statestore.NodeResult) (time.Time, error) {
	out, err := expr.Run(x.program, exprEnv(input, needs, x.idents, results))
	if err != nil {
		return time.Time{}, fmt.Errorf("until %q: %s", x.Source, firstLine(err.Error()))
	}
	switch v := out.(type) {
	case time.Time:
		return v, nil
	case string:
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return time.Time{}, fmt.Errorf("until %q: gave %q, not an RFC 3339 time (like 2026-01-02T15:04:05Z)", x.Source, v)
		}
		return t, nil
	case nil:
		return time.Time{}, fmt.Errorf("until %q: gave nothing (null), want a time", x.Source)
	default:
		return time.Time{}, fmt.Errorf("until %q: gave %T %v, want a time or an RFC 3339 string", x.Source, out, out)
	}
}
