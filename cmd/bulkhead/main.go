package main

import (
	"io"
	"os"
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

const usage = `bulkhead runs workflows whose nodes are sandboxed WebAssembly plugins.

Usage:
  bulkhead call FILE.wasm [FUNCTION] [flags]   call one export of a module
  bulkhead run FLOW.yaml [flags]               run a workflow durably (--run-id ID resumes one)
  bulkhead runs ls|show ID|cancel ID|resume ID list, inspect, cancel and resume runs
  bulkhead dlq ls|show ID|replay ID|purge      dead letters of failed nodes
  bulkhead checkpoints ls RUN [NODE]           checkpoints saved by long nodes
  bulkhead plugins ls|reload NAME              list plugins and their state, or load one to check it
  bulkhead hosts ls                            hosts sharing the store: live or stale, what they serve
  bulkhead serve [--config FILE] [flags]       run the service: HTTP API, metrics, dashboard
  bulkhead config show [flags]                 print serve's effective configuration and its sources
  bulkhead store check|repair [--data DIR]     check the data directory's store, or recover a damaged one
  bulkhead migrate [--store URL]               apply the PostgreSQL store's schema migrations
  bulkhead new --lang LANG NAME                write a ready-to-build node project
  bulkhead version                             print the version
  bulkhead help [COMMAND]                      show help

Run 'bulkhead help COMMAND' for a command's flags.
`

type command struct {
	name string
	run  func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"call", runCall},
		{"run", runRun},
		{"runs", runRuns},
		{"dlq", runDLQ},
		{"checkpoints", runCheckpoints},
		{"plugins", runPlugins},
		{"hosts", runHosts},
		{"serve", runServe},
		{"config", runConfig},
		{"store", runStore},
		{"migrate", runMigrate},
		{"new", runNew},
		{"version", runVersion},
	}
}

func doMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		io.WriteString(stderr, usage)
		return exitUsage
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		if len(args) > 1 {
			for _, c := range commands() {
				if c.name == args[1] {
					return c.run([]string{"-h"}, stdin, stdout, stderr)
				}
			}
		}
		io.WriteString(stdout, usage)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(args[1:], stdin, stdout, stderr)
		}
	}
	fprintf(stderr, "bulkhead: unknown command %q\n\n%s", name, usage)
	return exitUsage
}

// version is set by the linker (-X main.version=…) for releases.
var version = "dev"

func runVersion(_ []string, _ io.Reader, stdout, _ io.Writer) int {
	fprintf(stdout, "bulkhead %s\n", version)
	return exitOK
}
