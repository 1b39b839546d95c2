package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host/api"
)

func fprintf(w io.Writer, format string, args ...any) { fmt.Fprintf(w, format, args...) }

// newFlagSet returns a flag set that reports errors on stderr and does not exit.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fprintf(stderr, "Usage: bulkhead %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses flags that may come after positional arguments,
// as in `bulkhead call x.wasm run --input hi`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// sizeFlag is a byte size flag such as 64MiB.
type sizeFlag struct{ v *abi.Size }

func (s sizeFlag) String() string {
	if s.v == nil || *s.v == 0 {
		return ""
	}
	return s.v.String()
}
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

// flagHelp is flag.ErrHelp: -h was asked for and usage printed.
var flagHelp = flag.ErrHelp

// splitSubcommand takes a command's first argument as its subcommand. With
// none, or -h, it prints the synopsis and returns ok=false with the exit
// status.
func splitSubcommand(args []string, synopsis string, stderr io.Writer) (sub string, rest []string, exit int, ok bool) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fprintf(stderr, "Usage: bulkhead %s\n", synopsis)
		if len(args) == 0 {
			return "", nil, exitUsage, false
		}
		return "", nil, exitOK, false
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
