package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bulkhead-run/bulkhead/statestore"
)

// The dashboard's workflows: live shows a graph with a long node (its
// checkpoints and progress), a node that fails once and is retried and
// one that fails and falls back to a value; slow runs long enough to be
// cancelled and resumed;
// flaky fails both of its attempts, so its run fails with a dead letter,
// and succeeds on a replay (attempt numbers go on: 3 > fail_until).
const (
	dashLiveFlow = `name: live
policy:
  retry: {max_attempts: 3, initial_delay: 1500ms, jitter: none}
nodes:
  fetch: {plugin: nodes, function: work}
  crunch:
    plugin: nodes
    function: long
    config: {steps: 30, step_ms: 60, every: 10}
    needs: [fetch]
  price:
    plugin: nodes
    function: flaky
    config: {fail_until: 1}
    needs: [fetch]
  quote:
    plugin: nodes
    function: work
    config: {broken: true}
    policy: {retry: {max_attempts: 1}}
    fallback: {value: '{"quote": "cached"}'}
    needs: [fetch]
  report: {plugin: nodes, function: work, needs: [crunch, price, quote]}
`
	dashSlowFlow = `name: slow
nodes:
  wait:
    plugin: nodes
    function: long
    config: {steps: 60, step_ms: 50, every: 10}
`
	dashFlakyFlow = `name: flaky
policy:
  retry: {max_attempts: 2, initial_delay: 1ms, jitter: none}
nodes:
  charge:
    plugin: nodes
    function: flaky
    config: {fail_until: 2}
`
)

// dashBatchFlow maps a slow plugin over the items of a list (one item
// fails, tolerated), skips a branch by its condition, then sleeps and
// waits for an event side by side.
const dashBatchFlow = `name: batch
policy: {retry: {max_attempts: 1}}
nodes:
  list: {plugin: tiny, function: echo}
  each: {plugin: nodes, function: work, for_each: list, tolerate: 1, max_concurrency: 2}
  big: {plugin: nodes, function: work, needs: [list], when: 'len(list) > 100'}
  nap: {sleep: 1h, needs: [each]}
  approval: {wait_for: approval, timeout: 2h, needs: [each]}
  done: {plugin: nodes, function: work, needs: [big, nap, approval]}
`

// chromium returns the browser to drive, or skips the test without one
// (fails it when BULKHEAD_REQUIRE_BROWSER=1, as CI sets).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BULKHEAD_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("BULKHEAD_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium found and BULKHEAD_REQUIRE_BROWSER=1 (install Debian's chromium, or set BULKHEAD_CHROMIUM)")
	}
	t.Skip("no chromium: set BULKHEAD_CHROMIUM or install chromium")
	return ""
}

// browser is one headless chromium tab that records every console error,
// uncaught exception and error of the browser's log.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	errs []chromedp.ConsoleMessage
	// allow401 lets "401" network errors through (the page's first
	// requests before it has the token).
	allow401 bool
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 1000), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	b := &browser{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type != chromedp.ConsoleError && !m.IsException() {
				continue
			}
			b.mu.Lock()
			if !(b.allow401 && m.Source == "network" && strings.Contains(m.Text, "401")) {
				b.errs = append(b.errs, m)
			}
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancelTime()
		cancelTab()
		cancelAlloc()
		<-done
	})
	return b
}

func (b *browser) setAllow401(v bool) {
	b.mu.Lock()
	b.allow401 = v
	b.mu.Unlock()
}

// do runs actions and fails the test on an error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls a JavaScript predicate until it holds.
func (b *browser) wait(what, js string, within time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(within),
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("main").innerText`))
		b.t.Fatalf("waiting for %s: %v\npage:\n%s", what, err, text)
	}
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// checkConsole fails the test on any console error or exception so far.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.errs {
		b.t.Errorf("browser console: %s (%s:%d)", m, m.URL, m.Line)
	}
	b.errs = nil
}

func screenshots() bool { return *update || os.Getenv("BULKHEAD_SCREENSHOTS") == "1" }

// screenshot writes the page to docs/img/NAME when asked (-update or
// BULKHEAD_SCREENSHOTS=1).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if !screenshots() {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "img", name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// TestDashboard drives the dashboard in headless chromium against the
// real binary: the token form, the overview, a run's graph going from
// running to succeeded by live events alone, replaying a dead letter
// with its button, and the page without a token.
func TestDashboard(t *testing.T) {
	path := chromium(t)
	bin := buildBinary(t, t.TempDir())
	t.Run("WithToken", func(t *testing.T) { testDashboardToken(t, bin, path) })
	t.Run("WithoutToken", func(t *testing.T) { testDashboardNoToken(t, bin, path) })
	t.Run("MapTimerEvent", func(t *testing.T) { testDashboardWaits(t, bin, path) })
}

func testDashboardToken(t *testing.T, bin, path string) {
	dir := svcDir(t, map[string]string{"live": dashLiveFlow, "flaky": dashFlakyFlow, "slow": dashSlowFlow})
	s := startService(t, bin, dir)
	ctx := context.Background()
	b := newBrowser(t, path)
	b.setAllow401(true)
	url := "http://" + s.addr + "/"

	// The token is asked for once, and kept for the tab.
	b.do("load", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("token-form")))
	if hidden := b.eval(`String(document.getElementById("overview").hidden)`); hidden != "true" {
		t.Error("overview shown before the token was given")
	}
	b.do("token", chromedp.SendKeys(chromedp.ID("token-input"), s.token),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	b.setAllow401(false)
	b.wait("the overview", `!document.getElementById("overview").hidden && document.querySelectorAll("#plugins tbody tr td").length > 1 &&
		document.getElementById("live").textContent === "live"`, 15*time.Second)
	// Plugins still loading at the first health check are no fault.
	b.wait("a healthy service", `document.querySelector("#overall .st-healthy") !== null`, 5*time.Second)
	if got := b.eval(`sessionStorage.getItem("bulkhead-token")`); got != s.token {
		t.Errorf("token in session storage: %q", got)
	}
	b.checkConsole()

	// A run fails into the dead letter queue; the overview lists it with
	// a Replay button, which resumes the run from its failed node.
	if _, err := s.client.Submit(ctx, "flaky", nil, "order-17"); err != nil {
		t.Fatal(err)
	}
	b.wait("the dead letter's Replay button", `document.querySelector("#dlq button[data-replay]") !== null`, 15*time.Second)
	for i := range 3 {
		if _, err := s.client.Submit(ctx, "live", []byte(fmt.Sprintf(`{"batch":%d}`, i)), fmt.Sprintf("batch-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 30*time.Second, "the batches to finish", func() bool {
		page, err := s.client.Runs(ctx, statestore.RunFilter{Status: statestore.StatusSucceeded})
		return err == nil && len(page.Runs) == 3
	})
	b.wait("the finished batches in the overview", `document.querySelectorAll("#runs .st-succeeded").length >= 3`, 15*time.Second)
	b.wait("the sparklines", `document.querySelector("#tput polyline") !== null`, 10*time.Second)
	if screenshots() {
		b.wait("a longer sparkline", `samples.length >= 8`, 30*time.Second)
	}
	b.screenshot("dashboard-overview.png")
	b.do("replay", chromedp.Click(chromedp.CSS(`#dlq button[data-replay]`)))
	b.wait("the replay message", `document.getElementById("msg").textContent.startsWith("Replayed: run order-17")`, 10*time.Second)
	waitUntil(t, 20*time.Second, "the replayed run to succeed", func() bool {
		info, err := s.client.Run(ctx, "order-17")
		return err == nil && info.Status == "succeeded"
	})
	b.wait("the empty dead letter queue", `document.querySelector("#dlq button[data-replay]") === null`, 15*time.Second)

	// A run's page: its graph goes from running to succeeded on live
	// events, with no reload.
	b.eval(`window.notReloaded = "yes"; ""`)
	// Record every state the graph shows a node in, and whether it showed
	// a running node's progress (label and bar).
	b.eval(`window.seen = new Set();
		new MutationObserver(() => document.querySelectorAll("#dag .node").forEach(n => {
			seen.add(n.dataset.node + "=" + n.dataset.state);
			if (/: running [1-9][0-9]?%$/.test(n.getAttribute("aria-label")) && n.querySelector(".prog")) seen.add(n.dataset.node + "=progress");
		}))
			.observe(document.getElementById("dag"), {childList: true, subtree: true, attributes: true}); ""`)
	if _, err := s.client.Submit(ctx, "live", []byte(`{"order":42}`), "order-42"); err != nil {
		t.Fatal(err)
	}
	b.eval(`location.hash = "#/runs/order-42"; ""`)
	b.wait("crunch running in the graph", `document.querySelector('#dag [data-node="crunch"][data-state="running"]') !== null`, 15*time.Second)
	b.wait("every node succeeded", `[...document.querySelectorAll("#dag .node")].map(n => n.dataset.node + "=" + n.dataset.state).sort().join(" ") ===
		"crunch=succeeded fetch=succeeded price=succeeded quote=fallback report=succeeded"`, 20*time.Second)
	b.wait("the run succeeded", `document.querySelector("#run-status .st-succeeded") !== null`, 10*time.Second)
	// The page learnt it from the event stream, not from its slow poll.
	if v := b.eval(`recent.filter(e => e.run_id === "order-42").map(e => e.kind).join(" ")`); !strings.Contains(v, "node_started") ||
		!strings.Contains(v, "attempt_failed") || !strings.HasSuffix(v, "run_finished") {
		t.Errorf("events the page received for order-42: %s", v)
	}
	seen := b.eval(`[...seen].sort().join(" ")`)
	for _, want := range []string{"crunch=running", "crunch=progress", "price=retrying", "quote=fallback", "report=pending", "report=succeeded"} {
		if !strings.Contains(" "+seen+" ", " "+want+" ") {
			t.Errorf("the graph never showed %s; it showed %s", want, seen)
		}
	}
	if v := b.eval(`window.notReloaded || "reloaded"`); v != "yes" {
		t.Error("the page reloaded")
	}
	// The failed attempt of price is in the timeline with its error; the
	// checkpoints of crunch are listed.
	b.wait("the attempt timeline", `[...document.querySelectorAll("#attempts tbody tr")].some(r => r.textContent.includes("price") && r.textContent.includes("flaky: attempt 1 fails"))`, 5*time.Second)
	b.wait("the checkpoints", `document.querySelectorAll("#checkpoints tbody tr").length >= 1 && document.getElementById("checkpoints").textContent.includes("crunch")`, 5*time.Second)
	if got := b.eval(`document.getElementById("btn-cancel").disabled + " " + document.getElementById("btn-resume").disabled`); got != "true true" {
		t.Errorf("cancel, resume disabled on a succeeded run: %s", got)
	}
	// Keyboard: a node is focusable and Enter shows its details.
	b.eval(`document.querySelector('#dag [data-node="price"]').focus(); ""`)
	b.do("select a node", chromedp.KeyEvent("\r"))
	b.wait("the node's details", `document.getElementById("node-detail").textContent.includes("plugin nodes, function flaky")`, 5*time.Second)
	b.screenshot("dashboard-run.png")

	// Cancel and Resume.
	if _, err := s.client.Submit(ctx, "slow", nil, "order-99"); err != nil {
		t.Fatal(err)
	}
	b.eval(`location.hash = "#/runs/order-99"; ""`)
	b.wait("the slow node running", `document.querySelector('#dag [data-node="wait"][data-state="running"]') !== null &&
		!document.getElementById("btn-cancel").disabled`, 15*time.Second)
	b.do("cancel", chromedp.Click(chromedp.ID("btn-cancel")))
	b.wait("the cancelled run", `document.querySelector("#run-status .st-cancelled") !== null && !document.getElementById("btn-resume").disabled`, 10*time.Second)
	if info, err := s.client.Run(ctx, "order-99"); err != nil || info.Status != "cancelled" {
		t.Fatalf("after Cancel: %+v %v", info.Status, err)
	}
	b.do("resume", chromedp.Click(chromedp.ID("btn-resume")))
	b.wait("the resumed run to succeed", `document.querySelector("#run-status .st-succeeded") !== null`, 20*time.Second)
	b.checkConsole()
}

func testDashboardNoToken(t *testing.T, bin, path string) {
	dir := svcDir(t, map[string]string{"live": dashLiveFlow})
	s := startServiceToken(t, bin, dir, "")
	b := newBrowser(t, path)
	b.do("load", chromedp.Navigate("http://"+s.addr+"/"))
	b.wait("the overview", `!document.getElementById("overview").hidden && document.querySelectorAll("#health tbody tr td").length > 1 &&
		document.getElementById("live").textContent === "live"`, 15*time.Second)
	if v := b.eval(`String(document.getElementById("token-form").hidden)`); v != "true" {
		t.Error("token form shown by a service without a token")
	}
	b.checkConsole()
}

// testDashboardWaits: a run's graph shows a map's items going by with a
// bar, then done of the total with the failed one; a skipped node; a
// sleeping node with its due time; a node waiting for an event, which
// the node's Send event form delivers.
func testDashboardWaits(t *testing.T, bin, path string) {
	// yearly's first due time is next New Year: it starts no run here.
	yearly := "name: yearly\nschedule: {cron: \"@yearly\", overlap: queue}\nnodes:\n  go: {sleep: 1s}\n"
	dir := svcDir(t, map[string]string{"batch": dashBatchFlow, "yearly": yearly})
	tiny, err := os.ReadFile(filepath.Join("..", "..", "host", "testdata", "tiny.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plugins", "tiny.wasm"), tiny, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServiceToken(t, bin, dir, "")
	ctx := context.Background()
	b := newBrowser(t, path)
	b.do("load", chromedp.Navigate("http://"+s.addr+"/"))
	b.wait("the live stream", `document.getElementById("live").textContent === "live"`, 15*time.Second)
	// The overview lists the schedules with their next due time.
	b.wait("the schedule", `[...document.querySelectorAll("#schedules tbody tr")].some(r => /^yearly\s*@yearly\s*queue\s*last\s*/.test(r.innerText))`, 10*time.Second)
	b.eval(`window.seen = new Set();
		new MutationObserver(() => document.querySelectorAll("#dag .node").forEach(n => {
			seen.add(n.dataset.node + "=" + n.dataset.state);
			const m = /running, ([0-9]+)\/16 items/.exec(n.getAttribute("aria-label"));
			if (m && +m[1] > 0 && +m[1] < 16 && n.querySelector(".prog")) seen.add(n.dataset.node + "=items");
		}))
			.observe(document.getElementById("dag"), {childList: true, subtree: true, attributes: true}); ""`)

	var items []string
	for i := range 16 {
		if i == 5 {
			items = append(items, `{"config": {"broken": true}, "input": 5}`)
			continue
		}
		items = append(items, fmt.Sprintf(`{"config": {"sleep_ms": 150}, "input": %d}`, i))
	}
	if _, err := s.client.Submit(ctx, "batch", []byte("["+strings.Join(items, ",")+"]"), "batch-1"); err != nil {
		t.Fatal(err)
	}
	b.eval(`location.hash = "#/runs/batch-1"; ""`)
	b.wait("the map done, the timer and the event node waiting",
		`document.querySelector('#dag [data-node="each"][data-state="succeeded"]') !== null &&
		document.querySelector('#dag [data-node="nap"][data-state="waiting"][data-due]') !== null &&
		document.querySelector('#dag [data-node="approval"][data-state="waiting"][data-awaits="approval"]') !== null`, 30*time.Second)
	info, err := s.client.Run(ctx, "batch-1")
	if err != nil {
		t.Fatal(err)
	}
	due := map[string]string{}
	for _, n := range info.Nodes {
		if !n.DueAt.IsZero() {
			due[n.Name] = n.DueAt.Format(time.RFC3339Nano)
		}
	}
	label := func(node string) string {
		return b.eval(`document.querySelector('#dag [data-node="` + node + `"]').getAttribute("aria-label")`)
	}
	if got := label("each"); !strings.HasSuffix(got, ": succeeded, 15/16 items, 1 failed") {
		t.Errorf("map node: %q", got)
	}
	if got := b.eval(`String(document.querySelectorAll('#dag [data-node="each"] .prog, #dag [data-node="each"] .prog-fail').length)`); got != "2" {
		t.Errorf("map node: %s bars (done and failed), want 2", got)
	}
	if got := b.eval(`document.querySelector('#dag [data-node="big"]').dataset.state`); got != "skipped" {
		t.Errorf("conditional node: %s, want skipped", got)
	}
	if got, want := b.eval(`document.querySelector('#dag [data-node="nap"]').dataset.due`), due["nap"]; got != want || want == "" {
		t.Errorf("timer node due %q, want %q", got, want)
	}
	if got := label("nap"); !strings.Contains(got, ": sleeping until ") || !strings.Contains(got, "(in 59 min") {
		t.Errorf("timer node: %q", got)
	}
	if got := label("approval"); !strings.Contains(got, ": waiting for event approval, times out ") {
		t.Errorf("event node: %q", got)
	}
	seen := b.eval(`[...seen].sort().join(" ")`)
	for _, want := range []string{"each=running", "each=items", "big=skipped", "nap=waiting", "approval=waiting"} {
		if !strings.Contains(" "+seen+" ", " "+want+" ") {
			t.Errorf("the graph never showed %s; it showed %s", want, seen)
		}
	}

	// The map's details list its failed item; the event node's, a form
	// that sends the event.
	b.eval(`document.querySelector('#dag [data-node="each"]').focus(); ""`)
	b.do("select the map", chromedp.KeyEvent("\r"))
	b.wait("the map's details", `document.getElementById("node-detail").textContent.includes("map: 15 of 16 items done, 1 failed") &&
		document.getElementById("node-detail").textContent.includes("item 5: ")`, 5*time.Second)
	b.eval(`document.querySelector('#dag [data-node="approval"]').focus(); ""`)
	b.do("select the event node", chromedp.KeyEvent("\r"))
	b.wait("the Send event form", `document.querySelector("#send-box form.send-event textarea") !== null`, 5*time.Second)
	b.screenshot("dashboard-waits.png")
	b.eval(`document.getElementById("event-payload").value = ""; ""`)
	b.do("send the event", chromedp.SendKeys(chromedp.ID("event-payload"), `{"approved": true}`),
		chromedp.Click(chromedp.CSS(`#send-box button[type="submit"]`)))
	b.wait("the event delivered", `document.getElementById("msg").textContent === "Event approval delivered to run batch-1." &&
		document.querySelector('#dag [data-node="approval"][data-state="succeeded"]') !== null`, 15*time.Second)
	waitUntil(t, 10*time.Second, "the event node's output", func() bool {
		info, err := s.client.Run(ctx, "batch-1")
		for _, n := range info.Nodes {
			if n.Name == "approval" {
				return err == nil && string(n.Output) == `{"approved":true}`
			}
		}
		return false
	})
	b.wait("the form gone", `document.querySelector("#send-box form") === null`, 5*time.Second)
	// The next due time stays a due time as the page's clock ticks.
	if got := b.eval(`document.querySelector("#schedules time[data-due]").textContent`); !strings.Contains(got, "(in ") {
		t.Errorf("the schedule's next due time reads %q", got)
	}
	b.checkConsole()
}
