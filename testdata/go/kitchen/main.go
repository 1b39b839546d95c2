// Command kitchen is bulkhead's Go test fixture: one module whose exports
// cover the conformance suite and every hostile behaviour the host must
// contain.
//
// Build (from this directory; `make testdata` does it):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o kitchen.wasm .
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	bulkhead "github.com/bulkhead-run/bulkhead/sdk-guest/go"
)

func main() {}

// Conformance exports: every language's fixture has these.

//go:wasmexport echo
func echo() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) { return in, nil })
}

//go:wasmexport json
func jsonSum() int32 {
	type in struct{ A, B int64 }
	type out struct {
		Sum int64 `json:"sum"`
	}
	return bulkhead.HandleJSON(func(v in) (out, error) { return out{Sum: v.A + v.B}, nil })
}

//go:wasmexport config
func config() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		v, ok := bulkhead.Config(string(in))
		if !ok {
			return nil, bulkhead.Permanent(fmt.Errorf("config key %q is not set", in))
		}
		return []byte(v), nil
	})
}

//go:wasmexport var_incr
func varIncr() int32 {
	return bulkhead.Handle(func([]byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(bulkhead.Var("count")))
		n++
		s := strconv.Itoa(n)
		bulkhead.SetVar("count", []byte(s))
		return []byte(s), nil
	})
}

//go:wasmexport log
func logAll() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		for _, l := range []bulkhead.Level{bulkhead.LevelDebug, bulkhead.LevelInfo, bulkhead.LevelWarn, bulkhead.LevelError} {
			bulkhead.Log(l, string(in))
		}
		return nil, nil
	})
}

//go:wasmexport fail
func fail() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) { return nil, errors.New(string(in)) })
}

//go:wasmexport fail_permanent
func failPermanent() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) { return nil, bulkhead.Permanent(errors.New(string(in))) })
}

//go:wasmexport trap
func trap() int32 {
	panic("kitchen: deliberate trap")
}

//go:wasmexport invocation
func invocation() int32 {
	return bulkhead.Handle(func([]byte) ([]byte, error) {
		inv, err := bulkhead.Invocation()
		if err != nil {
			return nil, err
		}
		return json.Marshal(inv)
	})
}

//go:wasmexport retry_after
func retryAfter() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		ms, err := strconv.Atoi(string(in))
		if err != nil {
			return nil, bulkhead.Permanent(err)
		}
		bulkhead.RetryAfter(time.Duration(ms) * time.Millisecond)
		return nil, errors.New("rate limited")
	})
}

// Go-only exports: resilience and hostile behaviour.

//go:wasmexport noop
func noop() int32 { return 0 }

// flaky fails until the attempt number exceeds the input (default 2), then
// echoes "ok after N attempts".
//
//go:wasmexport flaky
func flaky() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		failures := 2
		if len(in) > 0 {
			failures, _ = strconv.Atoi(string(in))
		}
		inv, err := bulkhead.Invocation()
		if err != nil {
			return nil, err
		}
		if inv.Attempt <= failures {
			return nil, fmt.Errorf("flaky: attempt %d fails", inv.Attempt)
		}
		return []byte(fmt.Sprintf("ok after %d attempts", inv.Attempt)), nil
	})
}

//go:wasmexport spin
func spin() int32 {
	n := 0
	for {
		n++
	}
}

var hoard [][]byte

//go:wasmexport membomb
func membomb() int32 {
	for {
		b := make([]byte, 4<<20)
		b[len(b)-1] = 1
		hoard = append(hoard, b)
	}
}

// huge outputs input-many MiB (default 64).
//
//go:wasmexport huge
func huge() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		n := 64
		if len(in) > 0 {
			n, _ = strconv.Atoi(string(in))
		}
		return make([]byte, n<<20), nil
	})
}

//go:wasmexport exit
func exit() int32 {
	os.Exit(3)
	return 0
}

// sleep sleeps input milliseconds and returns the elapsed wall time.
//
//go:wasmexport sleep
func sleep() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		ms, _ := strconv.Atoi(string(in))
		start := time.Now()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return []byte(time.Since(start).String()), nil
	})
}

// checkpoint counts to the input (a number) in steps, saving a checkpoint
// after each, and resumes from the newest checkpoint.
//
//go:wasmexport checkpoint
func checkpoint() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		total, _ := strconv.Atoi(string(in))
		var state struct{ Done int }
		cp := bulkhead.NewCheckpointer[struct{ Done int }](0)
		resumed, err := cp.Load(&state)
		if err != nil {
			return nil, err
		}
		start := state.Done
		for state.Done < total {
			state.Done++
			bulkhead.Progress(int64(state.Done), int64(total), "counting")
			if err := cp.Save(state); err != nil {
				return nil, err
			}
		}
		return []byte(fmt.Sprintf("done %d resumed=%v from=%d", state.Done, resumed, start)), nil
	})
}

// state increments the plugin-state counter named by the input.
//
//go:wasmexport state
func state() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(bulkhead.State(string(in))))
		n++
		if err := bulkhead.SetState(string(in), []byte(strconv.Itoa(n))); err != nil {
			return nil, err
		}
		return []byte(strconv.Itoa(n)), nil
	})
}

// random returns 16 random bytes (crypto randomness from the host).
//
//go:wasmexport random
func random() int32 {
	return bulkhead.Handle(func([]byte) ([]byte, error) {
		b := make([]byte, 16)
		f, err := os.Open("/dev/urandom")
		if err == nil {
			f.Close()
			return nil, errors.New("filesystem visible to the guest")
		}
		_, err = readRandom(b)
		return b, err
	})
}

// Sandbox probes: each reports what the guest can reach.

// readfile outputs the file named by the input.
//
//go:wasmexport readfile
func readfile() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) { return os.ReadFile(string(in)) })
}

// writefile writes "written" to the file named by the input.
//
//go:wasmexport writefile
func writefile() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		return nil, os.WriteFile(string(in), []byte("written"), 0o644)
	})
}

// environ outputs the guest's environment, one variable a line.
//
//go:wasmexport environ
func environ() int32 {
	return bulkhead.Handle(func([]byte) ([]byte, error) {
		var out []byte
		for _, kv := range os.Environ() {
			out = append(out, kv+"\n"...)
		}
		return out, nil
	})
}

// http_get fetches the URL in the input and outputs "STATUS BODY".
//
//go:wasmexport http_get
func httpGet() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		resp, err := bulkhead.HTTPRequest{URL: string(in)}.Do()
		if err != nil {
			return nil, err
		}
		return []byte(fmt.Sprintf("%d %s", resp.Status, resp.Body)), nil
	})
}

// big_checkpoint saves a checkpoint of input-many bytes.
//
//go:wasmexport big_checkpoint
func bigCheckpoint() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(in))
		return nil, bulkhead.SaveCheckpoint(make([]byte, n))
	})
}

// health is called by the host's health monitor: it fails when the config
// says the plugin is unhealthy.
//
//go:wasmexport health
func health() int32 {
	return bulkhead.Handle(func([]byte) ([]byte, error) {
		if v, _ := bulkhead.Config("healthy"); v == "no" {
			return nil, errors.New("dependency unreachable")
		}
		return nil, nil
	})
}

// checkpoint_interval outputs the automatic checkpoint interval the host
// configured.
//
//go:wasmexport checkpoint_interval
func checkpointInterval() int32 {
	return bulkhead.Handle(func([]byte) ([]byte, error) {
		return []byte(bulkhead.CheckpointInterval().String()), nil
	})
}
