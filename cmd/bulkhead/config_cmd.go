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
// Problems (a token file that cannot be read, a bad value) are marked with
// "!" and listed after the table, and the exit status is then 1: serve
// would refuse the configuration.
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
	cfg, err := config.LoadAll(config.Options{File: file, Flags: flags})
	var problems []string
	if err != nil {
		for _, line := range strings.Split(userMessage(err.Error()), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				problems = append(problems, line)
			}
		}
	}
	code := exitOK
	if len(problems) > 0 {
		code = exitFailure
	}
	settings := cfg.Settings()
	if *asJSON {
		if problems == nil {
			problems = []string{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"file": file, "settings": settings, "problems": problems}); err != nil {
			return exitFailure
		}
		return code
	}
	if file != "" {
		fprintf(stdout, "# file: %s\n", file)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fprintf(tw, "KEY\tVALUE\tSOURCE\n")
	for _, s := range settings {
		key := s.Key
		if mentions(problems, s.Key) {
			key = "! " + key
		}
		fprintf(tw, "%s\t%s\t%s\n", key, s.Value, s.Source)
	}
	if err := tw.Flush(); err != nil {
		return exitFailure
	}
	if len(problems) > 0 {
		fprintf(stdout, "\n%d problem(s); serve refuses this configuration:\n", len(problems))
		for _, p := range problems {
			fprintf(stdout, "  ! %s\n", p)
		}
	}
	return code
}

// mentions reports whether a problem names key ("FILE:LINE: key: …",
// "flag --x: key: …" or "key: …").
func mentions(problems []string, key string) bool {
	for _, p := range problems {
		if strings.HasPrefix(p, key+":") || strings.Contains(p, " "+key+":") {
			return true
		}
	}
	return false
}
