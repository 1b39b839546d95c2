package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/supervisor"
	"github.com/bulkhead-run/bulkhead/host/workflow"
	"github.com/bulkhead-run/bulkhead/statestore/badgerstore"
)

// The service as a library: a host, the supervisor deploying a plugin
// directory into it with hot reload, and a workflow engine journaling into
// Badger, calling plugins through the host. Replacing the plugin's file
// swaps the new version in while the program runs.
func Example_embed() {
	ctx, dir := context.Background(), must(os.MkdirTemp("", "bulkhead"))
	defer os.RemoveAll(dir)
	plugins, wasm := filepath.Join(dir, "plugins"), filepath.Join(dir, "plugins", "answer.wasm")
	check(os.Mkdir(plugins, 0o755), os.WriteFile(wasm, must(os.ReadFile("testdata/one.wasm")), 0o644))

	h := must(host.New())
	check(h.Start(ctx))
	defer h.Stop(ctx)
	sv := must(supervisor.New(h, plugins)) // loads, watches and reloads the directory
	check(sv.Start(ctx), sv.WaitReady(ctx))
	defer sv.Stop(ctx)
	store := must(badgerstore.Open(filepath.Join(dir, "data")))
	defer store.Close()
	eng := must(workflow.New(store, h)) // the host is the engine's Invoker
	eng.AddWorkflow(must(workflow.Parse("answer.yaml", []byte("name: answer\nnodes: {ask: {plugin: answer}}\n"), workflow.ParseOptions{})))
	check(eng.Start(ctx))
	defer eng.Stop(ctx)

	run := func(id string) {
		must(eng.Submit(ctx, "answer", nil, id))
		r := must(eng.Wait(ctx, id))
		fmt.Println(id, r.Status, string(r.Output))
	}
	run("before")
	two := must(os.ReadFile("testdata/two.wasm"))
	check(os.WriteFile(wasm+".tmp", two, 0o644), os.Rename(wasm+".tmp", wasm)) // deploy a new version
	for p, _ := h.Plugin("answer"); p.Version != host.Version(two); p, _ = h.Plugin("answer") {
		time.Sleep(10 * time.Millisecond)
	}
	run("after")
	// Output:
	// before succeeded answer-1
	// after succeeded answer-2
}

func must[T any](v T, err error) T {
	check(err)
	return v
}

func check(errs ...error) {
	for _, err := range errs {
		if err != nil {
			panic(err)
		}
	}
}
