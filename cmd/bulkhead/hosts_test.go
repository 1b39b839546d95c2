package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/statestore/pgstore/pgtest"
)

// Two `bulkhead serve` processes on one database list each other in
// `bulkhead hosts ls`; one killed with SIGKILL is listed stale once it
// missed three heartbeats, one stopped with SIGTERM leaves the list.
func testServeHosts(t *testing.T, bin string) {
	url := pgtest.URL(t)
	dir := svcDir(t, nil)
	a := startService(t, bin, dir, "--store", url, "--heartbeat", "300ms")
	b := startService(t, bin, svcDir(t, nil), "--store", url, "--heartbeat", "300ms")
	t.Setenv("BULKHEAD_TOKEN", a.token)
	type row struct{ ID, State, Address string }
	list := func(args ...string) map[string]row {
		t.Helper()
		code, out, errOut := bulkhead(t, "", append([]string{"hosts", "ls", "--json"}, args...)...)
		if code != exitOK {
			t.Fatalf("hosts ls %v: exit %d\n%s", args, code, errOut)
		}
		var body struct{ Hosts []row }
		if err := json.Unmarshal([]byte(out), &body); err != nil {
			t.Fatalf("hosts ls --json: %v\n%s", err, out)
		}
		m := map[string]row{}
		for _, h := range body.Hosts {
			m[h.Address] = h
		}
		return m
	}
	waitUntil(t, 20*time.Second, "both hosts live", func() bool {
		hs := list("--store", url)
		return hs[a.addr].State == "live" && hs[b.addr].State == "live"
	})
	if hs := list("--server", "http://"+b.addr); len(hs) != 2 {
		t.Errorf("hosts ls through b: %v", hs)
	}
	code, out, errOut := bulkhead(t, "", "hosts", "ls", "--store", url)
	if code != exitOK || !regexp.MustCompile(`(?m)^\S+\s+live\s+`+regexp.QuoteMeta(a.addr)+`\s+dev\s+`).MatchString(out) ||
		!strings.Contains(out, "nodes@") {
		t.Errorf("hosts ls table: exit %d\n%s%s", code, out, errOut)
	}

	killed := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.done
	waitUntil(t, 20*time.Second, "b stale", func() bool { return list("--store", url)[b.addr].State == "stale" })
	// Its last heartbeat was at most one interval before the kill, later
	// when the machine is loaded: stale 600 to 900 ms after it on time.
	if el := time.Since(killed); el > 5*time.Second {
		t.Errorf("b listed stale %v after SIGKILL, want about 3 heartbeats of 300ms", el)
	} else {
		t.Logf("b listed stale %v after SIGKILL", el.Round(time.Millisecond))
	}
	if hs := list("--server", "http://"+a.addr); len(hs) != 2 || hs[b.addr].State != "stale" {
		t.Errorf("hosts ls through a: %v", hs)
	}
	a.stop(syscall.SIGTERM, 60*time.Second)
	if hs := list("--store", url); len(hs) != 1 || hs[a.addr].ID != "" {
		t.Errorf("after a stopped with SIGTERM: %v", hs)
	}
}
