package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulkhead-run/bulkhead/host/api"
	"github.com/bulkhead-run/bulkhead/host/server"
)

// `bulkhead serve` in-process: a plugin directory and a workflow
// directory served over HTTP on a free port, with the embedded store in
// the data directory. A run submitted through the API's client finishes
// and reads back with per-node detail.
func Example() {
	ctx, dir := context.Background(), must(os.MkdirTemp("", "bulkhead"))
	defer os.RemoveAll(dir)
	write(filepath.Join(dir, "plugins", "answer.wasm"), must(os.ReadFile("../supervisor/testdata/one.wasm")))
	write(filepath.Join(dir, "workflows", "answer.yaml"), []byte("name: answer\nnodes: {ask: {plugin: answer}}\n"))

	srv := must(server.New(server.Config{Listen: "127.0.0.1:0", PluginsDir: filepath.Join(dir, "plugins"),
		WorkflowsDir: filepath.Join(dir, "workflows"), DataDir: filepath.Join(dir, "data")}))
	check(srv.Start(ctx)) // returns once the API listens and the engine runs
	defer srv.Stop(ctx)

	c := must(api.NewClient("http://"+srv.Addr(), "", nil))
	sub := must(c.Submit(ctx, "answer", nil, "first"))
	must(srv.Engine().Wait(ctx, sub.RunID))
	run := must(c.Run(ctx, sub.RunID)) // a workflow.RunInfo
	fmt.Println(run.Status, string(run.Output), run.Nodes[0].Name, run.Nodes[0].Status)
	// Output:
	// succeeded answer-1 ask succeeded
}

func write(path string, b []byte) {
	check(os.MkdirAll(filepath.Dir(path), 0o755), os.WriteFile(path, b, 0o644))
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
