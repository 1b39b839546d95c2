package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/internal/digest"
	"github.com/bulkhead-run/bulkhead/statestore"
)

const hostsSynopsis = "hosts ls [--json] [--store URL | --data DIR | --server URL]"

// runHosts lists the hosts sharing a store: every registered host, live
// or stale (it missed its last heartbeats), with the plugin versions it
// serves. It asks a running service (--server) or reads the store itself.
func runHosts(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	sub, args, code, ok := splitSubcommand(args, hostsSynopsis, stdout, stderr)
	if !ok {
		return code
	}
	if sub != "ls" {
		fprintf(stderr, "bulkhead hosts: unknown subcommand %q\nUsage: bulkhead %s\n", sub, hostsSynopsis)
		return exitUsage
	}
	fs := newFlagSet("hosts ls", hostsSynopsis, stdout, stderr)
	var env envFlags
	env.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	server := serverFlag(fs)
	if _, code, ok := parseSubcommand(fs, args, "hosts ls", 0, stderr); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rm, code := dialRemote("hosts ls", *server, stderr)
	if code != exitOK {
		return code
	}
	var hosts []api.HostView
	if rm != nil {
		var err error
		if hosts, err = rm.c.Hosts(ctx); err != nil {
			return rm.fail(err, exitUsage, stderr)
		}
	} else {
		s, code := openStore("hosts ls", &env, stderr)
		if code != exitOK {
			return code
		}
		defer s.Close()
		hs, ok := s.(statestore.Hosts)
		if !ok {
			fprintf(stderr, "bulkhead hosts ls: the store cannot list hosts\n")
			return exitUsage
		}
		infos, err := hs.ListHosts(ctx)
		if err != nil {
			fprintf(stderr, "bulkhead hosts ls: %v\n", err)
			return exitFailure
		}
		for _, h := range infos {
			hosts = append(hosts, api.HostViewOf(h))
		}
	}
	if *asJSON {
		if hosts == nil {
			hosts = []api.HostView{}
		}
		return printJSON(stdout, map[string]any{"hosts": hosts})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fprintf(tw, "ID\tSTATE\tADDRESS\tVERSION\tLAST SEEN\tSTARTED\tPLUGINS\n")
	for _, h := range hosts {
		var ps []string
		for _, p := range h.Plugins {
			ps = append(ps, p.Plugin+"@"+digest.Short(p.Version))
		}
		fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\t%s\t%s\n", h.ID, h.State, orDash(h.Address), orDash(h.Version),
			h.Age, h.StartedAt.UTC().Format(time.RFC3339), orDash(strings.Join(ps, " ")))
	}
	tw.Flush()
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
