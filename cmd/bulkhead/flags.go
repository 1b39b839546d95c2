package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	flag "github.com/spf13/pflag"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/api"
)

func fprintf(w io.Writer, format string, args ...any) { fmt.Fprintf(w, format, args...) }

// newFlagSet returns a flag set (GNU style: --name, -n, flags anywhere
// among the arguments) whose --help/-h prints the command's usage on stdout;
// parse errors are reported by parseInterspersed on stderr.
func newFlagSet(name, synopsis string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stderr, fs, synopsis) }
	fs.VarP(&helpFlag{fs: fs, synopsis: synopsis, w: stdout}, "help", "h", "show this help")
	fs.Lookup("help").NoOptDefVal = "true"
	fs.SortFlags = true
	return fs
}

func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fprintf(w, "Usage: bulkhead %s\n\nFlags:\n%s", synopsis, fs.FlagUsages())
}

// helpFlag prints the usage on stdout when --help is given.
type helpFlag struct {
	fs       *flag.FlagSet
	synopsis string
	w        io.Writer
	asked    bool
}

func (h *helpFlag) String() string { return "false" }
func (h *helpFlag) Type() string   { return "bool" }
func (h *helpFlag) Set(string) error {
	if !h.asked {
		h.asked = true
		printUsage(h.w, h.fs, h.synopsis)
	}
	return nil
}

// parseInterspersed parses flags that may come after positional arguments,
// as in `bulkhead call x.wasm run --input hi`, and returns the positional
// arguments. It returns flagHelp once --help printed the usage; a parse
// error is reported on stderr in a sentence with the way to get help.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	err := fs.Parse(args)
	if h, ok := fs.Lookup("help").Value.(*helpFlag); ok && h.asked {
		return nil, flagHelp
	}
	if err != nil {
		fprintf(fs.Output(), "bulkhead %s: %v\nRun 'bulkhead %s --help' for its flags.\n", fs.Name(), err, strings.Fields(fs.Name())[0])
		return nil, err
	}
	return fs.Args(), nil
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
func (l *listFlag) Type() string       { return "strings" }

// sizeFlag is a byte size flag such as 64MiB.
type sizeFlag struct{ v *abi.Size }

func (s sizeFlag) String() string {
	if s.v == nil || *s.v == 0 {
		return ""
	}
	return s.v.String()
}
func (s sizeFlag) Type() string { return "size" }
func (s sizeFlag) Set(v string) error {
	n, err := abi.ParseSize(v)
	if err != nil {
		return err
	}
	*s.v = n
	return nil
}

// dataDir resolves the data directory: the flag, else
// RESILIENCE_CHECKPOINT_DIR, else BULKHEAD_DATA, else ./.bulkhead.
func dataDir(flagValue string) string {
	for _, v := range []string{flagValue, os.Getenv("RESILIENCE_CHECKPOINT_DIR"), os.Getenv("BULKHEAD_DATA")} {
		if v != "" {
			return v
		}
	}
	return ".bulkhead"
}

// cacheDir is where compiled code is kept: BULKHEAD_CACHE, else the data
// directory's cache folder.
func cacheDir(data string) string {
	if v := os.Getenv("BULKHEAD_CACHE"); v != "" {
		return v
	}
	return filepath.Join(data, "cache")
}

// flagHelp: --help was asked for and the usage printed.
var flagHelp = flag.ErrHelp

// splitSubcommand takes a command's first argument as its subcommand. With
// -h it prints the synopsis on stdout, with none on stderr, and returns
// ok=false with the exit status.
func splitSubcommand(args []string, synopsis string, stdout, stderr io.Writer) (sub string, rest []string, exit int, ok bool) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		w, code := stderr, exitUsage
		if len(args) > 0 {
			w, code = stdout, exitOK
		}
		cmd, _, _ := strings.Cut(synopsis, " ")
		fprintf(w, "Usage: bulkhead %s\n\nRun 'bulkhead %s SUBCOMMAND --help' for a subcommand's flags.\n", synopsis, cmd)
		return "", nil, code, false
	}
	return args[0], args[1:], exitOK, true
}

// parseSubcommand parses a subcommand's flags and checks it got want
// positional arguments; ok=false comes with the exit status.
func parseSubcommand(fs *flag.FlagSet, args []string, name string, want int, stderr io.Writer) (pos []string, exit int, ok bool) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return nil, exitOK, false
		}
		return nil, exitUsage, false
	}
	if len(pos) != want {
		fprintf(stderr, "bulkhead %s: want %d argument(s), got %d\n", name, want, len(pos))
		return nil, exitUsage, false
	}
	// The runs and dlq subcommands take IDs only.
	for _, id := range pos {
		if !checkID(name, "ID", id, stderr) {
			return nil, exitUsage, false
		}
	}
	return pos, exitOK, true
}

// checkID reports whether id (a run, dead-letter or node ID, or a
// cursor, which is one too) is well formed, as the API checks it; if not
// it says why on stderr.
func checkID(cmd, what, id string, stderr io.Writer) bool {
	err := api.CheckID(what, id)
	if err == nil {
		return true
	}
	msg := err.Error()
	var ae *api.Error
	if errors.As(err, &ae) {
		msg = ae.Message
	}
	fprintf(stderr, "bulkhead %s: %s\n", cmd, msg)
	return false
}

// jsonFlag registers the output format flags of a command that prints
// data: -o/--output table|json, and --json, short for -o json. It returns
// whether JSON was asked for.
func jsonFlag(fs *flag.FlagSet, usage string) *bool {
	asJSON := new(bool)
	fs.BoolVar(asJSON, "json", false, usage+" (same as -o json)")
	fs.VarP(outputFlag{asJSON}, "output", "o", "output `FORMAT`: table or json")
	return asJSON
}

type outputFlag struct{ json *bool }

func (o outputFlag) String() string {
	if o.json != nil && *o.json {
		return "json"
	}
	return "table"
}
func (o outputFlag) Type() string { return "format" }
func (o outputFlag) Set(v string) error {
	switch v {
	case "json":
		*o.json = true
	case "table":
		*o.json = false
	default:
		return fmt.Errorf("want table or json, got %q", v)
	}
	return nil
}
