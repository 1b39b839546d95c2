package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/resilience"
)

// Workflow is a parsed and validated workflow file: a DAG of nodes.
// It is immutable once returned by Parse.
type Workflow struct {
	// Name identifies the workflow; runs record it.
	Name string
	// File is where the workflow was read from ("" when parsed from bytes
	// without a name).
	File string
	// Source is the YAML text. Each run keeps a copy, so a run resumes on
	// the DAG it started with even if the file changed since.
	Source []byte
	// Policy is the default policy of the nodes (nil: each plugin's own).
	Policy *resilience.Policy
	// Nodes by name.
	Nodes map[string]*Node
	// Order lists the node names in a topological order (dependencies
	// first, ties by name).
	Order []string
	// Output names the node whose output is the run's output.
	Output string
	// Schedule starts runs on a cron schedule (nil: none).
	Schedule *Schedule
}

// Node is one step of a workflow.
type Node struct {
	Name string
	// Plugin is the plugin name; Version a pinned version hash prefix
	// ("" for the version loaded when the run starts).
	Plugin   string
	Version  string
	Function string
	// Config, when set, wraps the node's input: the plugin receives the
	// JSON object {"config": Config, "input": input}.
	Config map[string]any
	// Policy overrides the workflow's default policy (nil: inherit).
	Policy *resilience.Policy
	Needs  []string
	// Fallback is used when the node exhausts its policy (nil: none); in a
	// map, for each item that does.
	Fallback *Fallback
	// Map, when set, runs the plugin once per item (for_each); When, when
	// set, is the condition the node runs under.
	Map  *Map
	When *Condition
	// Workflow, when set (instead of Plugin), names the workflow the node
	// runs as a child run (ChildRunID); its output is the node's.
	Workflow string
	// Timer makes the node a durable timer; Wait makes it wait for an
	// external event. Such nodes have no plugin (see timer.go).
	Timer *Timer
	Wait  *Wait
	// Line is the node's line in the file.
	Line int
	// dependents are the nodes that need this one, sorted.
	dependents []string
}

// Fallback is what replaces a node's output when it fails for good: a
// fixed value, or the output of another plugin given the same input.
type Fallback struct {
	HasValue bool
	Value    string
	Plugin   string
	Version  string
	Function string
}

// EffectivePolicy returns the node's policy: its own, else the workflow's,
// else nil (the plugin's own policy applies).
func (w *Workflow) EffectivePolicy(node string) *resilience.Policy {
	if n := w.Nodes[node]; n != nil && n.Policy != nil {
		return n.Policy
	}
	return w.Policy
}

// Dependents returns the nodes that need node.
func (w *Workflow) Dependents(node string) []string {
	if n := w.Nodes[node]; n != nil {
		return n.dependents
	}
	return nil
}

// Problem is one validation error, with its place in the file.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	case p.File != "":
		return p.File + ": " + p.Msg
	case p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return p.Msg
}

// ValidationError lists every problem of a workflow file, in file order.
// It matches ErrInvalid.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "invalid workflow:\n  " + strings.Join(lines, "\n  ")
}

// Is makes a ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// ParseOptions tune validation.
type ParseOptions struct {
	// KnownPlugin reports whether a plugin name exists; nil skips the check.
	KnownPlugin func(name string) bool
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

type parser struct {
	file  string
	opts  ParseOptions
	probs []Problem
	whens []pendingWhen
	// untils are until values to compile as expressions.
	untils []pendingUntil
	// builtins holds the timer and event keys of the node being read.
	builtins map[*Node]*builtinKeys
}

func (p *parser) errf(line int, format string, args ...any) {
	p.probs = append(p.probs, Problem{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// ParseFile reads and parses a workflow file.
func ParseFile(path string, opts ParseOptions) (*Workflow, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("workflow: %w", err)
	}
	return Parse(path, b, opts)
}

// Parse parses and validates a workflow. file names the source in
// problems. Every problem found is reported at once in a *ValidationError:
// YAML syntax, unknown keys, wrong types, unknown needs, cycles, unknown
// plugins (with KnownPlugin), bad policies and output choices.
func Parse(file string, src []byte, opts ParseOptions) (*Workflow, error) {
	p := &parser{file: file, opts: opts}
	w := p.parse(src)
	if len(p.probs) > 0 {
		sort.SliceStable(p.probs, func(i, j int) bool { return p.probs[i].Line < p.probs[j].Line })
		return nil, &ValidationError{Problems: p.probs}
	}
	w.File = file
	w.Source = bytes.Clone(src)
	return w, nil
}

func (p *parser) parse(src []byte) *Workflow {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		p.errf(yamlErrLine(err), "%s", stripLine(strings.TrimPrefix(err.Error(), "yaml: ")))
		return nil
	}
	if len(doc.Content) == 0 {
		p.errf(0, "empty file")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errf(root.Line, "want a mapping with name and nodes")
		return nil
	}
	w := &Workflow{Nodes: map[string]*Node{}}
	var nodesLine, outputLine int
	var nodeKeys []*yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "name":
			w.Name = p.str(v, "name")
			if w.Name != "" && !nameRE.MatchString(w.Name) {
				p.errf(v.Line, "name %q: use letters, digits, '.', '_' and '-' (at most 128)", w.Name)
			}
		case "description":
			p.str(v, "description")
		case "policy":
			w.Policy = p.policy(v)
		case "output":
			w.Output = p.str(v, "output")
			outputLine = v.Line
		case "schedule":
			w.Schedule = p.schedule(v)
		case "nodes":
			nodesLine = k.Line
			if v.Kind != yaml.MappingNode {
				p.errf(v.Line, "nodes: want a mapping of node name to node")
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				nk, nv := v.Content[j], v.Content[j+1]
				if _, dup := w.Nodes[nk.Value]; dup {
					p.errf(nk.Line, "node %q defined twice", nk.Value)
					continue
				}
				n := p.node(nk, nv)
				w.Nodes[n.Name] = n
				nodeKeys = append(nodeKeys, nk)
			}
		default:
			p.errf(k.Line, "unknown key %q (want name, description, policy, nodes, output, schedule)", k.Value)
		}
	}
	if w.Name == "" {
		p.errf(root.Line, "name is missing")
	}
	if nodesLine == 0 {
		p.errf(root.Line, "nodes is missing")
	} else if len(w.Nodes) == 0 {
		p.errf(nodesLine, "nodes is empty")
	}
	p.resolveNodeKeys(w)
	// needs refer to nodes that exist
	for _, nk := range nodeKeys {
		n := w.Nodes[nk.Value]
		for _, need := range n.Needs {
			if need == n.Name {
				p.errf(n.Line, "node %q needs itself", n.Name)
			} else if d, ok := w.Nodes[need]; !ok {
				p.errf(n.Line, "node %q needs unknown node %q", n.Name, need)
			} else {
				d.dependents = append(d.dependents, n.Name)
			}
		}
	}
	for _, n := range w.Nodes {
		slices.Sort(n.dependents)
		n.dependents = slices.Compact(n.dependents)
	}
	w.Order = p.order(w)
	var sinks []string
	for _, name := range sortedKeys(w.Nodes) {
		if len(w.Nodes[name].dependents) == 0 {
			sinks = append(sinks, name)
		}
	}
	switch {
	case w.Output != "":
		if _, ok := w.Nodes[w.Output]; !ok {
			p.errf(outputLine, "output names unknown node %q", w.Output)
		}
	case len(sinks) == 1:
		w.Output = sinks[0]
	case len(sinks) > 1:
		p.errf(nodesLine, "several nodes end the workflow (%s): set output to one of them", strings.Join(sinks, ", "))
	}
	return w
}

// order returns a topological order and reports every cycle's nodes.
func (p *parser) order(w *Workflow) []string {
	indeg := map[string]int{}
	for name, n := range w.Nodes {
		c := 0
		for _, need := range n.Needs {
			if _, ok := w.Nodes[need]; ok && need != name {
				c++
			}
		}
		indeg[name] = c
	}
	var ready, out []string
	for _, name := range sortedKeys(w.Nodes) {
		if indeg[name] == 0 {
			ready = append(ready, name)
		}
	}
	for len(ready) > 0 {
		name := ready[0]
		ready = ready[1:]
		out = append(out, name)
		for _, d := range w.Nodes[name].dependents {
			indeg[d]--
			if indeg[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(out) < len(w.Nodes) {
		var left []string
		line := 0
		for _, name := range sortedKeys(w.Nodes) {
			if indeg[name] > 0 {
				left = append(left, name)
				if l := w.Nodes[name].Line; line == 0 || l < line {
					line = l
				}
			}
		}
		p.errf(line, "cycle among nodes %s", strings.Join(left, ", "))
	}
	return out
}

func (p *parser) node(k, v *yaml.Node) *Node {
	n := &Node{Name: k.Value, Line: k.Line, Function: abi.ExportRun}
	if !nameRE.MatchString(n.Name) {
		p.errf(k.Line, "node name %q: use letters, digits, '.', '_' and '-'", n.Name)
	}
	if v.Kind != yaml.MappingNode {
		p.errf(v.Line, "node %q: want a mapping with plugin, function, needs, ...", n.Name)
		return n
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		fk, fv := v.Content[i], v.Content[i+1]
		switch fk.Value {
		case "plugin":
			n.Plugin, n.Version = p.pluginRef(fv, "node "+n.Name)
		case "function":
			n.Function = p.str(fv, "function")
		case "config":
			if fv.Kind != yaml.MappingNode {
				p.errf(fv.Line, "node %q: config: want a mapping", n.Name)
				continue
			}
			var m map[string]any
			if err := fv.Decode(&m); err != nil {
				p.errf(fv.Line, "node %q: config: %v", n.Name, err)
				continue
			}
			if _, err := json.Marshal(m); err != nil {
				p.errf(fv.Line, "node %q: config is not JSON-compatible: %v", n.Name, err)
				continue
			}
			n.Config = m
		case "policy":
			n.Policy = p.policy(fv)
		case "needs":
			switch fv.Kind {
			case yaml.ScalarNode:
				n.Needs = []string{fv.Value}
			case yaml.SequenceNode:
				for _, e := range fv.Content {
					if e.Kind != yaml.ScalarNode {
						p.errf(e.Line, "node %q: needs: want node names", n.Name)
						continue
					}
					if slices.Contains(n.Needs, e.Value) {
						p.errf(e.Line, "node %q needs %q twice", n.Name, e.Value)
						continue
					}
					n.Needs = append(n.Needs, e.Value)
				}
			default:
				p.errf(fv.Line, "node %q: needs: want a list of node names", n.Name)
			}
		case "fallback":
			n.Fallback = p.fallback(n.Name, fv)
		default:
			if !p.nodeKey(n, fk, fv) && !p.builtinKey(n, fk, fv) {
				p.errf(fk.Line, "node %q: unknown key %q (want plugin, workflow, function, config, policy, needs, fallback, for_each, max_concurrency, tolerate, when, sleep, until, wait_for, timeout, default)", n.Name, fk.Value)
			}
		}
	}
	if p.finishBuiltin(n) {
		return n
	}
	if n.Plugin == "" && n.Workflow == "" {
		p.errf(k.Line, "node %q: plugin is missing", n.Name)
	}
	if n.Function == "" {
		p.errf(k.Line, "node %q: function is empty", n.Name)
	}
	return n
}

func (p *parser) fallback(node string, v *yaml.Node) *Fallback {
	if v.Kind != yaml.MappingNode {
		p.errf(v.Line, "node %q: fallback: want {value: ...} or {plugin: ..., function: ...}", node)
		return nil
	}
	f := &Fallback{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, fv := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "value":
			f.HasValue = true
			f.Value = p.str(fv, "fallback value")
		case "plugin":
			f.Plugin, f.Version = p.pluginRef(fv, "node "+node+" fallback")
		case "function":
			f.Function = p.str(fv, "fallback function")
		default:
			p.errf(k.Line, "node %q: fallback: unknown key %q (want value, plugin, function)", node, k.Value)
		}
	}
	switch {
	case f.HasValue && f.Plugin != "":
		p.errf(v.Line, "node %q: fallback: set value or plugin, not both", node)
	case !f.HasValue && f.Plugin == "":
		p.errf(v.Line, "node %q: fallback: set value or plugin", node)
	case f.Function != "" && f.Plugin == "":
		p.errf(v.Line, "node %q: fallback: function needs plugin", node)
	}
	if f.Plugin != "" && f.Function == "" {
		f.Function = abi.ExportRun
	}
	return f
}

func (p *parser) pluginRef(v *yaml.Node, what string) (string, string) {
	s := p.str(v, "plugin")
	if s == "" {
		return "", ""
	}
	name, ver, _ := strings.Cut(s, "@")
	if !nameRE.MatchString(name) {
		p.errf(v.Line, "%s: plugin name %q is not valid", what, name)
		return name, ver
	}
	if strings.Contains(s, "@") && !regexp.MustCompile(`^[0-9a-f]{4,64}$`).MatchString(ver) {
		p.errf(v.Line, "%s: plugin version %q: want a hex hash prefix of at least 4 digits", what, ver)
	}
	if p.opts.KnownPlugin != nil && !p.opts.KnownPlugin(name) {
		p.errf(v.Line, "%s: unknown plugin %q", what, name)
	}
	return name, ver
}

func (p *parser) str(v *yaml.Node, what string) string {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.errf(v.Line, "%s: want a string", what)
		return ""
	}
	return v.Value
}

// policy reads a preset name or an inline policy.
func (p *parser) policy(v *yaml.Node) *resilience.Policy {
	switch v.Kind {
	case yaml.ScalarNode:
		pol, err := resilience.Preset(v.Value)
		if err != nil {
			p.errf(v.Line, "policy: unknown preset %q (have %s)", v.Value, strings.Join(resilience.PresetNames(), ", "))
			return nil
		}
		return &pol
	case yaml.MappingNode:
		// Re-encode the mapping so unknown fields can be refused.
		b, err := yaml.Marshal(v)
		if err != nil {
			p.errf(v.Line, "policy: %v", err)
			return nil
		}
		var pol resilience.Policy
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&pol); err != nil {
			var te *yaml.TypeError
			if errors.As(err, &te) {
				for _, msg := range te.Errors {
					p.errf(v.Line+lineOf(msg)-1, "policy: %s", stripLine(msg))
				}
			} else {
				p.errf(v.Line, "policy: %v", err)
			}
			return nil
		}
		if err := pol.Validate(); err != nil {
			p.errf(v.Line, "policy: %v", err)
			return nil
		}
		return &pol
	}
	p.errf(v.Line, "policy: want a preset name or a mapping")
	return nil
}

var lineRE = regexp.MustCompile(`^line (\d+): `)

func lineOf(msg string) int {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return 1
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n
}

func stripLine(msg string) string { return lineRE.ReplaceAllString(msg, "") }

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	m := yamlLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LoadDir parses every *.yaml and *.yml file of dir. It returns the
// workflows that parsed, by name, and every problem of the others (and of
// duplicate names) joined in one error.
func LoadDir(dir string, opts ParseOptions) (map[string]*Workflow, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("workflow: %w", err)
	}
	out := map[string]*Workflow{}
	var errs []error
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		w, err := ParseFile(filepath.Join(dir, e.Name()), opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := out[w.Name]; dup {
			errs = append(errs, fmt.Errorf("workflow %q is defined in %s and %s", w.Name, prev.File, w.File))
			continue
		}
		out[w.Name] = w
	}
	errs = append(errs, unknownChildren(out)...)
	return out, errors.Join(errs...)
}
