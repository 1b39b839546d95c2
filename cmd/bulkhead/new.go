package main

import (
	"errors"
	"io"
	"strings"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/scaffold"
)

func runNew(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("new", "new --lang "+strings.Join(scaffold.Languages(), "|")+" NAME [--dir DIR] [--sdk DIR]", stdout, stderr)
	lang := fs.String("lang", "", "language of the node: `LANG` ("+strings.Join(scaffold.Languages(), ", ")+")")
	dir := fs.String("dir", "", "write the project into `DIR` (default ./NAME)")
	sdk := fs.String("sdk", "", "a bulkhead checkout `DIR` whose Go SDK a Go node builds against instead of its vendored copy")
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
	if err := scaffold.WriteWith(out, *lang, name, opts); err != nil {
		fprintf(stderr, "bulkhead new: %v\n", err)
		return exitUsage
	}
	fprintf(stdout, "wrote %s node %q in %s: cd %s && make && bulkhead call %s.wasm --input world\n", *lang, name, out, out, name)
	return exitOK
}
