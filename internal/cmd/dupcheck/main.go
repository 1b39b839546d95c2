// Command dupcheck fails when the given Go files hold dead code or copies
// that `go vet` and staticcheck let through:
//
//   - same-func: two functions or methods, at least one unexported, whose
//     bodies are the same once their parameter and local names are ignored
//     (a helper defined twice);
//   - import-keeper: `var _ = pkg.Name`, a line whose only job is to keep an
//     import that nothing uses;
//   - shadows-std: a package-level name that hides a standard package a Go
//     programmer expects to import there (maps, slices, strings, ...);
//   - clone: a fragment that github.com/mibk/dupl reports as repeated, read
//     from the file given by -clones (dupl's -plumbing output).
//
// A finding that is accepted is listed in the exceptions file, one a line:
//
//	kind file[,file...] [name]  # reason
//
// The reason is required. An exception that matches nothing is an error
// too, so the list shrinks as the code is fixed.
//
// Usage:
//
//	dupcheck [-exceptions file] [-clones file|-] [-min nodes] file.go...
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("dupcheck", flag.ContinueOnError)
	fl.SetOutput(stderr)
	exceptions := fl.String("exceptions", "", "file of accepted findings")
	clones := fl.String("clones", "", "dupl -plumbing output to include (- for stdin)")
	minNodes := fl.Int("min", 12, "smallest function body, in syntax nodes, compared by same-func")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	found, err := check(fl.Args(), *minNodes)
	if err != nil {
		fmt.Fprintln(stderr, "dupcheck:", err)
		return 2
	}
	if *clones != "" {
		var r io.Reader = stdin
		if *clones != "-" {
			f, err := os.Open(*clones)
			if err != nil {
				fmt.Fprintln(stderr, "dupcheck:", err)
				return 2
			}
			defer f.Close()
			r = f
		}
		c, err := readClones(r)
		if err != nil {
			fmt.Fprintln(stderr, "dupcheck:", err)
			return 2
		}
		found = append(found, c...)
	}
	var ex []exception
	if *exceptions != "" {
		b, err := os.ReadFile(*exceptions)
		if err != nil {
			fmt.Fprintln(stderr, "dupcheck:", err)
			return 2
		}
		if ex, err = parseExceptions(string(b)); err != nil {
			fmt.Fprintf(stderr, "dupcheck: %s: %v\n", *exceptions, err)
			return 2
		}
	}
	left, unused := filter(found, ex)
	for _, f := range left {
		fmt.Fprintln(stdout, f.text)
	}
	for _, e := range unused {
		fmt.Fprintf(stdout, "%s:%d: exception matches nothing: %s\n", *exceptions, e.line, e.key())
	}
	if len(left) > 0 || len(unused) > 0 {
		return 1
	}
	return 0
}

// A finding is one problem. Its key (kind, files, name) is what an
// exception names; text is what the user reads.
type finding struct {
	kind  string
	files []string // sorted
	name  string
	text  string
}

type exception struct {
	kind  string
	files []string // sorted
	name  string
	line  int
}

func (e exception) key() string {
	return strings.TrimSpace(e.kind + " " + strings.Join(e.files, ",") + " " + e.name)
}

func (e exception) matches(f finding) bool {
	return e.kind == f.kind && slices.Equal(e.files, f.files) && (e.name == "" || e.name == f.name)
}

// parseExceptions reads "kind file[,file...] [name]  # reason" lines; blank
// lines and lines starting with # are comments.
func parseExceptions(s string) ([]exception, error) {
	var out []exception
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		body, reason, ok := strings.Cut(line, "#")
		if !ok || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("line %d: an exception needs a reason after #", i+1)
		}
		fields := strings.Fields(body)
		if len(fields) < 2 || len(fields) > 3 {
			return nil, fmt.Errorf("line %d: want \"kind file[,file...] [name]  # reason\"", i+1)
		}
		switch fields[0] {
		case "same-func", "import-keeper", "shadows-std", "clone":
		default:
			return nil, fmt.Errorf("line %d: unknown kind %q", i+1, fields[0])
		}
		e := exception{kind: fields[0], files: strings.Split(fields[1], ","), line: i + 1}
		sort.Strings(e.files)
		if len(fields) == 3 {
			e.name = fields[2]
		}
		out = append(out, e)
	}
	return out, nil
}

// filter drops the findings an exception names and returns the rest, with
// the exceptions that named nothing.
func filter(found []finding, ex []exception) (left []finding, unused []exception) {
	used := make([]bool, len(ex))
	for _, f := range found {
		excepted := false
		for i, e := range ex {
			if e.matches(f) {
				used[i], excepted = true, true
			}
		}
		if !excepted {
			left = append(left, f)
		}
	}
	for i, e := range ex {
		if !used[i] {
			unused = append(unused, e)
		}
	}
	return left, unused
}

// stdNames are standard packages a file is likely to import; a package-level
// declaration with one of these names makes that import impossible.
var stdNames = map[string]bool{
	"bytes": true, "cmp": true, "context": true, "errors": true, "filepath": true,
	"fmt": true, "http": true, "io": true, "iter": true, "json": true, "maps": true,
	"os": true, "slices": true, "slog": true, "sort": true, "strconv": true,
	"strings": true, "sync": true, "time": true,
}

func check(files []string, minNodes int) ([]finding, error) {
	fset := token.NewFileSet()
	type fn struct {
		pos      token.Position
		name     string
		exported bool
	}
	bodies := map[string][]fn{}
	var out []finding
	for _, path := range files {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		imports := map[string]bool{}
		for _, im := range f.Imports {
			name := strings.Trim(im.Path.Value, `"`)
			name = name[strings.LastIndex(name, "/")+1:]
			if im.Name != nil {
				name = im.Name.Name
			}
			imports[name] = true
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && stdNames[d.Name.Name] {
					out = append(out, shadows(fset.Position(d.Pos()), path, d.Name.Name))
				}
				if d.Body == nil || nodes(d.Body) < minNodes {
					continue
				}
				fp := fingerprint(d)
				bodies[fp] = append(bodies[fp], fn{fset.Position(d.Pos()), funcName(d), d.Name.IsExported()})
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.ValueSpec:
						for i, n := range s.Names {
							if stdNames[n.Name] {
								out = append(out, shadows(fset.Position(n.Pos()), path, n.Name))
							}
							if n.Name != "_" || s.Type != nil || i >= len(s.Values) {
								continue
							}
							v := s.Values[i]
							switch x := v.(type) { // slices.Sort[[]string]
							case *ast.IndexExpr:
								v = x.X
							case *ast.IndexListExpr:
								v = x.X
							}
							if sel, ok := v.(*ast.SelectorExpr); ok {
								if x, ok := sel.X.(*ast.Ident); ok && imports[x.Name] {
									ref := x.Name + "." + sel.Sel.Name
									out = append(out, finding{
										kind: "import-keeper", files: []string{path}, name: ref,
										text: fmt.Sprintf("%s: var _ = %s only keeps an unused import; remove both", fset.Position(n.Pos()), ref),
									})
								}
							}
						}
					case *ast.TypeSpec:
						if stdNames[s.Name.Name] {
							out = append(out, shadows(fset.Position(s.Pos()), path, s.Name.Name))
						}
					}
				}
			}
		}
	}
	fps := make([]string, 0, len(bodies))
	for fp, fs := range bodies {
		// Exported functions of different packages may share a body: each
		// package has its own options (WithLogger) and API.
		if len(fs) > 1 && slices.ContainsFunc(fs, func(f fn) bool { return !f.exported }) {
			fps = append(fps, fp)
		}
	}
	sort.Slice(fps, func(i, j int) bool { return bodies[fps[i]][0].pos.String() < bodies[fps[j]][0].pos.String() })
	for _, fp := range fps {
		fs := bodies[fp]
		var files, where []string
		for _, f := range fs {
			if !slices.Contains(files, f.pos.Filename) {
				files = append(files, f.pos.Filename)
			}
			where = append(where, fmt.Sprintf("%s (%s)", f.pos, f.name))
		}
		sort.Strings(files)
		sort.Strings(where)
		out = append(out, finding{
			kind: "same-func", files: files, name: fs[0].name,
			text: fmt.Sprintf("same function body %d times: %s; keep one", len(fs), strings.Join(where, ", ")),
		})
	}
	return out, nil
}

func shadows(pos token.Position, path, name string) finding {
	return finding{
		kind: "shadows-std", files: []string{path}, name: name,
		text: fmt.Sprintf("%s: %s hides the standard package %s; rename it", pos, name, name),
	}
}

func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	t := d.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	if ix, ok := t.(*ast.IndexExpr); ok {
		t = ix.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + d.Name.Name
	}
	return d.Name.Name
}

func nodes(n ast.Node) int {
	c := 0
	ast.Inspect(n, func(n ast.Node) bool {
		if n != nil {
			c++
		}
		return true
	})
	return c
}

// fingerprint prints a function's signature and body with the names it
// declares (receiver, parameters, results, locals) replaced by their order
// of declaration, so copies that differ only in those names collide.
func fingerprint(d *ast.FuncDecl) string {
	local := map[string]string{}
	declare := func(id *ast.Ident) {
		if id != nil && id.Name != "_" {
			if _, ok := local[id.Name]; !ok {
				local[id.Name] = fmt.Sprintf("·%d", len(local))
			}
		}
	}
	fields := func(fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, f := range fl.List {
			for _, n := range f.Names {
				declare(n)
			}
		}
	}
	fields(d.Recv)
	fields(d.Type.Params)
	fields(d.Type.Results)
	ast.Inspect(d.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok == token.DEFINE {
				for _, l := range n.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						declare(id)
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range n.Names {
				declare(id)
			}
		case *ast.RangeStmt:
			if n.Tok == token.DEFINE {
				for _, e := range []ast.Expr{n.Key, n.Value} {
					if id, ok := e.(*ast.Ident); ok {
						declare(id)
					}
				}
			}
		case *ast.FuncLit:
			fields(n.Type.Params)
			fields(n.Type.Results)
		}
		return true
	})
	var b strings.Builder
	write := func(n ast.Node) {
		ast.Inspect(n, func(n ast.Node) bool {
			if n == nil {
				b.WriteByte(')')
				return false
			}
			fmt.Fprintf(&b, "(%T", n)
			switch n := n.(type) {
			case *ast.Ident:
				if l, ok := local[n.Name]; ok {
					b.WriteString(" " + l)
				} else {
					b.WriteString(" " + n.Name)
				}
			case *ast.BasicLit:
				b.WriteString(" " + n.Value)
			case *ast.BinaryExpr:
				b.WriteString(" " + n.Op.String())
			case *ast.UnaryExpr:
				b.WriteString(" " + n.Op.String())
			case *ast.AssignStmt:
				b.WriteString(" " + n.Tok.String())
			case *ast.IncDecStmt:
				b.WriteString(" " + n.Tok.String())
			case *ast.BranchStmt:
				b.WriteString(" " + n.Tok.String())
			}
			return true
		})
	}
	if d.Recv != nil {
		for _, f := range d.Recv.List {
			write(f.Type)
		}
	}
	write(d.Type.Params)
	if d.Type.Results != nil {
		write(d.Type.Results)
	}
	write(d.Body)
	return b.String()
}

// cloneLine is one line of dupl's -plumbing output.
var cloneLine = regexp.MustCompile(`^(.+):(\d+)-(\d+): duplicate of (.+):(\d+)-(\d+)$`)

// readClones turns dupl's output into findings, one per pair of files
// (dupl lists each pair both ways; a group of n copies, n lines).
func readClones(r io.Reader) ([]finding, error) {
	byFiles := map[string]*finding{}
	var order []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		m := cloneLine.FindStringSubmatch(line)
		if m == nil {
			return nil, errors.New("not dupl -plumbing output: " + line)
		}
		files := []string{m[1], m[4]}
		sort.Strings(files)
		if files[0] == files[1] {
			files = files[:1]
		}
		k := strings.Join(files, ",")
		f, ok := byFiles[k]
		if !ok {
			f = &finding{kind: "clone", files: files}
			byFiles[k] = f
			order = append(order, k)
		}
		if f.text != "" {
			f.text += "\n"
		}
		f.text += line
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]finding, 0, len(order))
	for _, k := range order {
		out = append(out, *byFiles[k])
	}
	return out, nil
}
