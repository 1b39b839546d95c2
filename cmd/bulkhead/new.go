package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/scaffold"
)

func runNew(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("new", "new --lang "+strings.Join(scaffold.Languages(), "|")+" NAME [--dir DIR] [--sdk DIR]", stderr)
	lang := fs.String("lang", "", "language of the node: `LANG` ("+strings.Join(scaffold.Languages(), ", ")+")")
	dir := fs.String("dir", "", "write the project into `DIR` (default ./NAME)")
	sdk := fs.String("sdk", "", "a bulkhead checkout `DIR` whose Go SDK a Go node builds against (default: the checkout around the current directory, if any)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) != 1 || *lang == "" {
		fprintf(stderr, "bulkhead new: want --lang and one NAME\n")
		fs.Usage()
		return exitUsage
	}
	name := pos[0]
	out := *dir
	if out == "" {
		out = name
	}
	opts := scaffold.Options{GoSDKDir: *sdk}
	if opts.GoSDKDir == "" && *lang == scaffold.Go {
		opts.GoSDKDir = findCheckout()
	}
	if err := scaffold.WriteWith(out, *lang, name, opts); err != nil {
		fprintf(stderr, "bulkhead new: %v\n", err)
		return exitUsage
	}
	fprintf(stdout, "wrote %s node %q in %s: cd %s && make && bulkhead call %s.wasm --input world\n", *lang, name, out, out, name)
	return exitOK
}

// findCheckout returns the bulkhead checkout around the working directory,
// or "".
func findCheckout() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/bulkhead-run/bulkhead\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}
