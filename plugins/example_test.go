package plugins_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/bulkhead-run/bulkhead/plugins"
)

// A registry over a directory: the initial scan reports what is there, and
// a module deployed by write-then-rename is reported once, complete.
func Example() {
	dir, _ := os.MkdirTemp("", "plugins")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "hello.wasm"), []byte("\x00asm v1"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "hello.yaml"), []byte("memory: 32MiB\ntimeout: 2s\n"), 0o644)

	events := make(chan plugins.Event, 16)
	reg, err := plugins.New(dir,
		plugins.WithDebounce(20*time.Millisecond),
		plugins.WithHandler(func(ev plugins.Event) { events <- ev }))
	if err != nil {
		panic(err)
	}
	if err := reg.Start(context.Background()); err != nil {
		panic(err)
	}
	defer reg.Stop(context.Background())

	for _, info := range reg.List() {
		fmt.Println("listed", info.Name, info.Version[:12], info.Manifest.Memory, info.Manifest.Timeout)
	}
	ev := <-events
	fmt.Println(ev.Kind, ev.Name, ev.Version[:12], len(ev.Bytes))

	// Deploy a new version: write it under a name the registry ignores,
	// then rename it over the old one.
	tmp := filepath.Join(dir, ".hello.wasm.tmp")
	_ = os.WriteFile(tmp, []byte("\x00asm v2, longer"), 0o644)
	_ = os.Rename(tmp, filepath.Join(dir, "hello.wasm"))
	ev = <-events
	fmt.Println(ev.Kind, ev.Name, ev.Version[:12], len(ev.Bytes))

	// Output:
	// listed hello 54b694019c65 32MiB 2s
	// added hello 54b694019c65 7
	// changed hello 36685d2f1328 15
}
