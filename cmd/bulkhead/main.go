package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulkhead-run/bulkhead/internal/digest"
)

func main() {
	os.Exit(doMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // the plugin or the run failed
	exitUsage   = 2 // bad usage, a module that cannot be loaded, a data directory that cannot be used
)

type command struct {
	name  string
	use   string // arguments and flags, after the name
	short string
	run   func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"call", "FILE.wasm|URL [FUNCTION] [flags]", "call one export of a module", runCall},
		{"run", "FLOW.yaml [flags]", "run a workflow durably (--run-id ID resumes one; --server URL on a service)", runRun},
		{"runs", "ls|show ID|wait ID|cancel ID|resume ID", "list, inspect, wait for, cancel and resume runs", runRuns},
		{"dlq", "ls|show ID|replay ID|purge", "dead letters of failed nodes", runDLQ},
		{"checkpoints", "ls RUN [NODE]", "checkpoints saved by long nodes", runCheckpoints},
		{"plugins", "ls|reload NAME", "list plugins and their state (exit 1 if one is refused), or load one to check it", runPlugins},
		{"hosts", "ls [--json]", "hosts sharing the store: live or stale, what they serve", runHosts},
		{"schedules", "ls [--json]", "workflows' schedules: cron, policies, last and next due time", runSchedules},
		{"serve", "[--config FILE] [flags]", "run the service: HTTP API, metrics, dashboard", runServe},
		{"config", "show [flags]", "print serve's effective configuration, its sources and its problems", runConfig},
		{"store", "check|repair [--data DIR]", "check the data directory's store, or recover a damaged one", runStore},
		{"migrate", "[--store URL]", "apply the PostgreSQL store's schema migrations", runMigrate},
		{"new", "--lang LANG NAME", "write a ready-to-build node project", runNew},
		{"ready", "[--server URL]", "exit 0 when a service answers ready on /readyz (a health check)", runReady},
		{"version", "[-o table|json]", "print the version, VCS revision and Go version", runVersion},
	}
}

const rootLong = `bulkhead runs workflows whose nodes are sandboxed WebAssembly plugins.

Exit status: 0 success; 1 the plugin, the run or the check failed; 2 bad
usage or configuration, a module that cannot be loaded, a data directory or
service that cannot be used.`

// doMain runs the command line args and returns the exit status. Every
// subcommand parses its own flags (GNU style: --name, -n, flags anywhere);
// the root handles help, --version, completion and typos.
func doMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	code := exitOK
	root := &cobra.Command{
		Use:           "bulkhead",
		Short:         "bulkhead runs workflows whose nodes are sandboxed WebAssembly plugins",
		Long:          rootLong,
		Version:       versionOf(buildInfo()).String(),
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(c *cobra.Command, _ []string) error {
			// No command: the usage on stderr, a usage error.
			c.SetOut(stderr)
			_ = c.Usage()
			code = exitUsage
			return nil
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("bulkhead {{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, c := range commands() {
		run := c.run
		sub := &cobra.Command{
			Use:                c.name + " " + c.use,
			Short:              c.short,
			DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error {
				code = run(args, stdin, stdout, stderr)
				return nil
			},
		}
		sub.ValidArgsFunction = completeFlags(run)
		// `bulkhead help CMD` is `bulkhead CMD --help`: the command's own
		// flags, on stdout.
		sub.SetHelpFunc(func(*cobra.Command, []string) { code = run([]string{"--help"}, stdin, stdout, stderr) })
		root.AddCommand(sub)
	}
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		msg := err.Error()
		if strings.HasPrefix(msg, "unknown command") {
			msg += "\nRun 'bulkhead --help' for the commands."
		}
		fprintf(stderr, "bulkhead: %s\n", msg)
		return exitUsage
	}
	return code
}

// completeFlags completes a subcommand's flags (taken from its usage) when
// the word starts with "-", and file names otherwise.
func completeFlags(run func([]string, io.Reader, io.Writer, io.Writer) int) cobra.CompletionFunc {
	return func(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !strings.HasPrefix(toComplete, "-") {
			return nil, cobra.ShellCompDirectiveDefault
		}
		// The subcommand word (runs ls, dlq show) selects the flags.
		var words []string
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			words = append(words, args[0])
		}
		var usage strings.Builder
		run(append(words, "--help"), strings.NewReader(""), &usage, io.Discard)
		var out []cobra.Completion
		for _, line := range strings.Split(usage.String(), "\n") {
			for _, f := range strings.Fields(strings.ReplaceAll(line, ",", " ")) {
				if strings.HasPrefix(f, "--") && strings.HasPrefix(f, toComplete) && !strings.ContainsAny(f, "=[]") {
					out = append(out, f)
				}
				if !strings.HasPrefix(f, "-") {
					break // the flag names come first on a line
				}
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// version is set by the linker for releases
// (-ldflags "-X main.version=v1.2.3"); otherwise the module version from
// the build information is used.
var version = ""

// versionInfo is what `bulkhead version -o json` prints.
type versionInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"` // VCS revision of the build
	Time     string `json:"time,omitempty"`     // VCS commit time
	Modified bool   `json:"modified,omitempty"` // built from a checkout with local changes
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func buildInfo() *debug.BuildInfo {
	bi, _ := debug.ReadBuildInfo()
	return bi
}

// versionOf reads the module version and VCS stamp of bi (nil when the
// binary has none).
func versionOf(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: "dev", Go: goruntime.Version(), Platform: goruntime.GOOS + "/" + goruntime.GOARCH}
	if bi != nil {
		v.Go = bi.GoVersion
		if m := bi.Main.Version; m != "" && m != "(devel)" {
			v.Version = m
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			case "GOOS":
				v.Platform = s.Value + v.Platform[strings.Index(v.Platform, "/"):]
			case "GOARCH":
				v.Platform = v.Platform[:strings.Index(v.Platform, "/")+1] + s.Value
			}
		}
	}
	if version != "" {
		v.Version = version
	}
	return v
}

// String is the one-line form: v1.2.3 (rev 0123456789ab, modified, go1.26.0 linux/amd64).
func (v versionInfo) String() string {
	var extra []string
	if v.Revision != "" {
		extra = append(extra, "rev "+digest.Short(v.Revision))
	}
	if v.Modified {
		extra = append(extra, "modified")
	}
	extra = append(extra, v.Go+" "+v.Platform)
	return fmt.Sprintf("%s (%s)", v.Version, strings.Join(extra, ", "))
}

func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "version [-o table|json]", stdout, stderr)
	asJSON := jsonFlag(fs, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flagHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) > 0 {
		fprintf(stderr, "bulkhead version: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	v := versionOf(buildInfo())
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return exitFailure
		}
		return exitOK
	}
	fprintf(stdout, "bulkhead %s\n", v)
	return exitOK
}
