// Command nodes is the Go fixture of bulkhead's workflow tests and demo:
// workflow nodes that record every execution in plugin state, so tests
// can prove which nodes ran again after a crash.
//
// A node given config receives {"config": {...}, "input": ...}; the
// exports read these config keys:
//
//	work:  sleep_ms (default 0), broken (when true the node always fails)
//	long:  steps (default 100), step_ms (default 10), every (steps per checkpoint, default 10)
//	flaky: fail_until (default 2): attempts up to this number fail
//
// Every export appends its attempt number to the plugin-state key
// "exec/<run>/<node>"; long also adds one to "steps/<run>/<node>" per step
// it executes and appends the step it resumed from to "resumed/<run>/<node>".
//
// Build (from this directory; `make testdata` does it):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o nodes.wasm .
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	bulkhead "github.com/bulkhead-run/bulkhead/sdk-guest/go"
)

func main() {}

type config struct {
	SleepMS   int  `json:"sleep_ms"`
	Broken    bool `json:"broken"`
	Steps     int  `json:"steps"`
	StepMS    int  `json:"step_ms"`
	Every     int  `json:"every"`
	FailUntil *int `json:"fail_until"`
}

// split separates the config wrapper from the input.
func split(in []byte) (config, []byte) {
	var w struct {
		Config *config         `json:"config"`
		Input  json.RawMessage `json:"input"`
	}
	if json.Unmarshal(in, &w) != nil || w.Config == nil {
		return config{}, in
	}
	return *w.Config, w.Input
}

// record appends this attempt to the node's execution list and returns
// the invocation.
func record() (string, error) {
	inv, err := bulkhead.Invocation()
	if err != nil {
		return "", err
	}
	key := "exec/" + inv.RunID + "/" + inv.Node
	old := bulkhead.State(key)
	if len(old) > 0 {
		old = append(old, ',')
	}
	if err := bulkhead.SetState(key, append(old, strconv.Itoa(inv.Attempt)...)); err != nil {
		return "", err
	}
	return inv.RunID + "/" + inv.Node, nil
}

func digest(node string, in []byte) string {
	sum := sha256.Sum256(append([]byte(node+"|"), in...))
	return hex.EncodeToString(sum[:6])
}

// work records its execution, sleeps sleep_ms and returns
// {"node": name, "digest": hash of its input}.
//
//go:wasmexport work
func work() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		cfg, input := split(in)
		if _, err := record(); err != nil {
			return nil, err
		}
		if v, ok := bulkhead.Config("broken"); cfg.Broken || (ok && v == "true") {
			return nil, errors.New("work: this version is broken")
		}
		if cfg.SleepMS > 0 {
			time.Sleep(time.Duration(cfg.SleepMS) * time.Millisecond)
		}
		inv, _ := bulkhead.Invocation()
		return json.Marshal(map[string]string{"node": inv.Node, "digest": digest(inv.Node, input)})
	})
}

// flaky fails while its attempt number is at most fail_until, then works
// like work without sleeping.
//
//go:wasmexport flaky
func flaky() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		cfg, input := split(in)
		if _, err := record(); err != nil {
			return nil, err
		}
		until := 2
		if cfg.FailUntil != nil {
			until = *cfg.FailUntil
		}
		inv, _ := bulkhead.Invocation()
		if inv.Attempt <= until {
			return nil, fmt.Errorf("flaky: attempt %d fails (until %d)", inv.Attempt, until)
		}
		return json.Marshal(map[string]string{"node": inv.Node, "digest": digest(inv.Node, input)})
	})
}

// long executes steps steps of step_ms each, saving a checkpoint every
// `every` steps, and resumes from the newest checkpoint.
//
//go:wasmexport long
func long() int32 {
	return bulkhead.Handle(func(in []byte) ([]byte, error) {
		cfg, input := split(in)
		id, err := record()
		if err != nil {
			return nil, err
		}
		steps, stepMS, every := cfg.Steps, cfg.StepMS, cfg.Every
		if steps <= 0 {
			steps = 100
		}
		if stepMS <= 0 {
			stepMS = 10
		}
		if every <= 0 {
			every = 10
		}
		var st struct {
			Done int    `json:"done"`
			Acc  string `json:"acc"`
		}
		cp := bulkhead.NewCheckpointer[struct {
			Done int    `json:"done"`
			Acc  string `json:"acc"`
		}](0)
		if _, err := cp.Load(&st); err != nil {
			return nil, err
		}
		if st.Acc == "" {
			st.Acc = digest("long", input)
		}
		rkey := "resumed/" + id
		old := bulkhead.State(rkey)
		if len(old) > 0 {
			old = append(old, ',')
		}
		if err := bulkhead.SetState(rkey, append(old, strconv.Itoa(st.Done)...)); err != nil {
			return nil, err
		}
		skey := "steps/" + id
		for st.Done < steps {
			time.Sleep(time.Duration(stepMS) * time.Millisecond)
			st.Acc = digest(st.Acc, []byte(strconv.Itoa(st.Done)))
			st.Done++
			n, _ := strconv.Atoi(string(bulkhead.State(skey)))
			if err := bulkhead.SetState(skey, []byte(strconv.Itoa(n+1))); err != nil {
				return nil, err
			}
			bulkhead.Progress(int64(st.Done), int64(steps), "step")
			if st.Done%every == 0 && st.Done < steps {
				if err := cp.Flush(st); err != nil {
					return nil, err
				}
			}
		}
		return json.Marshal(map[string]any{"node": "long", "steps": st.Done, "digest": st.Acc})
	})
}
