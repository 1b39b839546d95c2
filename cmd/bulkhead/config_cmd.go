package main

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bulkhead-run/bulkhead/cmd/bulkhead/internal/config"
)

const configSynopsis = "config show [--config FILE] [--json] [serve flags]"

// runConfig prints the effective configuration of `bulkhead serve` with
// the same file, environment and flags, and where each value came from.
func runConfig(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "show" && args[0] != "-h" && args[0] != "--help") {
		fprintf(stderr, "Usage: bulkhead %s\n", configSynopsis)
		return exitUsage
	}
	if args[0] == "show" {
		args = args[1:]
	}
	fs := newFlagSet("config show", configSynopsis, stdout, stderr)
	flags := config.AddFlags(fs)
	asJSON := jsonFlag(fs, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) > 0 {
		fprintf(stderr, "bulkhead config show: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	file := config.FileFromFlags(flags, nil)
	cfg, err := config.Load(config.Options{File: file, Flags: flags})
	if err != nil {
		fprintf(stderr, "bulkhead config: invalid configuration:\n  %s\n", strings.ReplaceAll(userMessage(err.Error()), "\n", "\n  "))
		return exitUsage
	}
	settings := cfg.Settings()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"file": file, "settings": settings}); err != nil {
			return exitFailure
		}
		return exitOK
	}
	if file != "" {
		fprintf(stdout, "# file: %s\n", file)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fprintf(tw, "KEY\tVALUE\tSOURCE\n")
	for _, s := range settings {
		fprintf(tw, "%s\t%s\t%s\n", s.Key, s.Value, s.Source)
	}
	if err := tw.Flush(); err != nil {
		return exitFailure
	}
	return exitOK
}
