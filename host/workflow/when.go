package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// Condition is a node's `when:` expression (the expr language,
// github.com/expr-lang/expr), compiled and type-checked when the file is
// parsed. It sees the run's input as `input`, the outputs of the node's
// needs as `needs` (a map by node name) and, for each need whose name is
// an identifier, that output by its name. Outputs that are JSON are
// decoded (objects, arrays, numbers as float64, strings, booleans, null);
// others are strings. A skipped need is absent from `needs` and nil by
// name. The expression must give a boolean.
type Condition struct {
	// Source is the expression as written.
	Source  string
	program *vm.Program
	// idents are the needs visible by name.
	idents []string
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// conditionEnv declares the names an expression of a node with needs may
// use: a strict environment, so a name that is not declared is an error
// at load.
func conditionEnv(needs []string) (types.Map, []string) {
	byName := types.Map{}
	env := types.Map{"input": types.Any}
	var idents []string
	for _, n := range needs {
		byName[n] = types.Any
		if identRE.MatchString(n) && n != "input" && n != "needs" {
			env[n] = types.Any
			idents = append(idents, n)
		}
	}
	env["needs"] = byName
	return env, idents
}

// compileCondition compiles the `when` value v of node n. Problems are
// reported at their line in the file.
func (p *parser) compileCondition(n *Node, v *yaml.Node) {
	src := v.Value
	env, idents := conditionEnv(n.Needs)
	prog, err := expr.Compile(src, expr.Env(env), expr.AsBool())
	if err != nil {
		line, msg := exprError(v, err)
		p.errf(line, "node %q: when: %s", n.Name, msg)
		return
	}
	n.When = &Condition{Source: src, program: prog, idents: idents}
}

// exprError is the line in the file and the message of err, the error of
// compiling expression v.
func exprError(v *yaml.Node, err error) (int, string) {
	line, msg := v.Line, err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		if fe.Column >= 0 {
			msg = fmt.Sprintf("%s (column %d)", msg, fe.Column+1)
		}
		if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 && fe.Line > 0 {
			// A block scalar starts on the line after its key.
			line += fe.Line
		}
	}
	return line, firstLine(msg)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Eval evaluates the condition over the run's input and the journaled
// results of the node's needs (skipped needs are absent).
func (c *Condition) Eval(input []byte, needs []string, results map[string]statestore.NodeResult) (bool, error) {
	out, err := expr.Run(c.program, exprEnv(input, needs, c.idents, results))
	if err != nil {
		return false, fmt.Errorf("when %q: %s", c.Source, firstLine(err.Error()))
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("when %q: gave %T, want a boolean", c.Source, out)
	}
	return b, nil
}

// exprEnv is what an expression over a node's input and needs sees (see
// Condition).
func exprEnv(input []byte, needs, idents []string, results map[string]statestore.NodeResult) map[string]any {
	byName := make(map[string]any, len(needs))
	for _, n := range needs {
		if r, ok := results[n]; ok && !r.Skipped {
			byName[n] = decodeValue(r.Output)
		}
	}
	env := map[string]any{"input": decodeValue(input), "needs": byName}
	for _, n := range idents {
		env[n] = byName[n]
	}
	return env
}

// decodeValue is b decoded as JSON, else b as a string (nil when empty).
func decodeValue(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(b, &v) == nil {
		return v
	}
	return string(b)
}

// shouldSkip reports whether node n is skipped: its condition is false,
// or it has no condition and every one of its needs was skipped.
func shouldSkip(rs *runState, n *Node, results map[string]statestore.NodeResult) (bool, error) {
	if n.When != nil {
		run, err := n.When.Eval(rs.input, n.Needs, results)
		return !run, err
	}
	if len(n.Needs) == 0 {
		return false, nil
	}
	for _, need := range n.Needs {
		if !results[need].Skipped {
			return false, nil
		}
	}
	return true, nil
}

// beforeNode decides, before a node runs, whether it is skipped: a
// skipped node is journaled as such (its dependents are queued as for any
// completion); a condition that cannot be evaluated fails the node.
// handled is false when the node is to run.
func (e *Engine) beforeNode(ctx context.Context, rs *runState, f statestore.Fence, n *Node, results map[string]statestore.NodeResult) (next statestore.Task, ok, handled bool) {
	skip, err := shouldSkip(rs, n, results)
	if err != nil {
		e.failNode(ctx, rs, f, n, rs.input, 0, "", err)
		return statestore.Task{}, false, true
	}
	if !skip {
		return statestore.Task{}, false, false
	}
	now := time.Now()
	e.emit(Event{Kind: EventNodeBypassed, RunID: rs.id, Workflow: rs.wf.Name, Node: n.Name})
	next, ok = e.completeTask(ctx, rs, f, statestore.NodeResult{RunID: rs.id, Node: n.Name, Skipped: true,
		StartedAt: now, FinishedAt: now, Host: e.o.owner})
	return next, ok, true
}

// EventNodeBypassed: a node's condition was false (or every one of its
// needs was skipped): it is journaled as skipped without running.
const EventNodeBypassed EventKind = "node_bypassed"
