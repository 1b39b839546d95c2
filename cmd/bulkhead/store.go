package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

const storeSynopsis = "store check|repair [--data DIR]"

// errStoreIsURL: check and repair work on the embedded store only.
var errStoreIsURL = errors.New("check and repair work on the embedded store in the data directory; a PostgreSQL store is checked and repaired with PostgreSQL's own tools")

// runStore checks or repairs the data directory's store. check changes
// nothing and exits 0 when the store is sound, 1 when it found damage;
// repair exits 0 when the store opens again, 1 when something could not be
// repaired.
func runStore(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	sub, rest, code, ok := splitSubcommand(args, storeSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	if sub != "check" && sub != "repair" {
		fprintf(stderr, "bulkhead store: unknown subcommand %q\nUsage: bulkhead %s\n", sub, storeSynopsis)
		return exitUsage
	}
	fs := newFlagSet("store "+sub, storeSynopsis, stdout, stderr)
	data := fs.String("data", "", "data `DIR` (default $RESILIENCE_CHECKPOINT_DIR, $BULKHEAD_DATA or ./.bulkhead)")
	store := fs.String("store", "", "refused: check and repair are for the embedded store (default $BULKHEAD_STORE)")
	asJSON := jsonFlag(fs, "print the report as JSON")
	if _, code, ok := parseSubcommand(fs, rest, "store "+sub, 0, stderr); !ok {
		return code
	}
	if storeURL(*store) != "" {
		fprintf(stderr, "bulkhead store %s: %v\n", sub, errStoreIsURL)
		return exitUsage
	}
	dir := filepath.Join(dataDir(*data), "store")
	inspect := badgerstore.Check
	if sub == "repair" {
		inspect = badgerstore.Repair
	}
	rep, err := inspect(dir)
	if err != nil {
		fprintf(stderr, "bulkhead store %s: %v\n", sub, err)
		if errors.Is(err, badgerstore.ErrInUse) {
			fprintf(stderr, "  stop the process that has it open (usually `bulkhead serve`) first\n")
		}
		return exitUsage
	}
	result, code := "", exitOK
	switch {
	case rep.Unrepairable:
		result, code = "damage that repair cannot fix; restore the directory from a backup", exitFailure
	case sub == "check" && rep.OK():
		result = "sound"
	case sub == "check" && len(rep.Problems) > 0:
		result, code = "damaged; `bulkhead store repair` drops the damaged log tails and says what that loses", exitFailure
	case sub == "check":
		result, code = "damaged; these records cannot be read", exitFailure
	case len(rep.Repaired) == 0 && len(rep.Lost) == 0:
		result = "nothing to repair"
	default:
		result = "repaired; the store opens"
	}
	var lost []string
	if sub == "repair" && !rep.Unrepairable {
		lost = rep.Lost
	}
	if sub == "repair" && !rep.Unrepairable && len(rep.Lost) == 0 && len(rep.Repaired) > 0 {
		lost = []string{"nothing acknowledged (no stored record pointed into the dropped bytes: they were never acknowledged)"}
	}
	if *asJSON {
		if c := printJSON(stdout, map[string]any{
			"dir": rep.Dir, "free_bytes": rep.Free, "problems": nonNil(rep.Problems), "repaired": nonNil(rep.Repaired),
			"unreadable": nonNil(rep.Unreadable), "notes": nonNil(rep.Notes), "lost": nonNil(lost), "result": result,
		}); c != exitOK {
			return c
		}
		return code
	}
	fprintf(stdout, "store %s\n", rep.Dir)
	if rep.Free >= 0 {
		fprintf(stdout, "free space: %s\n", formatSize(rep.Free))
	}
	for _, p := range rep.Problems {
		fprintf(stdout, "problem: %s\n", p)
	}
	for _, r := range rep.Repaired {
		fprintf(stdout, "repaired: %s\n", r)
	}
	for _, u := range rep.Unreadable {
		fprintf(stdout, "unreadable: %s\n", u)
	}
	for _, n := range rep.Notes {
		fprintf(stdout, "note: %s\n", n)
	}
	for _, l := range lost {
		fprintf(stdout, "lost: %s\n", l)
	}
	fprintf(stdout, "result: %s\n", result)
	return code
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// formatSize prints a byte count in MiB with one decimal.
func formatSize(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
