package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
)

// manyLocals is a valid module the fuel rewriter refuses to meter: its "run"
// (no parameters, one i32 result) declares 50,001 locals and spins forever.
func manyLocals() []byte {
	leb := func(v uint32) []byte {
		var out []byte
		for {
			b := byte(v & 0x7f)
			v >>= 7
			if v != 0 {
				out = append(out, b|0x80)
				continue
			}
			return append(out, b)
		}
	}
	section := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, leb(uint32(len(body)))...), body...)
	}
	// body: one local entry of 50,001 i32; loop forever.
	code := append([]byte{1}, leb(50001)...)
	code = append(code, 0x7f)
	code = append(code, 0x03, 0x40, 0x0c, 0x00, 0x0b) // loop br 0 end
	code = append(code, 0x41, 0x00, 0x0b)             // i32.const 0; end
	fn := append(leb(uint32(len(code))), code...)
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, []byte{1, 0x60, 0, 1, 0x7f})...)                          // type () -> i32
	m = append(m, section(3, []byte{1, 0})...)                                         // one function of type 0
	m = append(m, section(7, append([]byte{1, 3}, append([]byte("run"), 0, 0)...))...) // export "run" func 0
	m = append(m, section(10, append([]byte{1}, fn...))...)                            // code
	return m
}

func TestUnmetered_FallbackOrRefusal(t *testing.T) {
	ctx := context.Background()
	strict := newHost(t, host.WithUnmeteredFallback(false))
	_, err := strict.Load(ctx, "locals", manyLocals(), abi.Manifest{})
	if !errors.Is(err, host.ErrInvalidModule) || !strings.Contains(err.Error(), "cpu metering") {
		t.Fatalf("strict Load = %v; want a refusal naming CPU metering", err)
	}

	lenient := newHost(t)
	if _, err := lenient.Load(ctx, "locals", manyLocals(), abi.Manifest{}); err != nil {
		t.Fatal(err)
	}
	info, _ := lenient.Plugin("locals")
	if info.Metered || info.Unmetered == "" {
		t.Fatalf("info %+v: want unmetered with a reason", info)
	}
	// Unmetered, it still stops at its deadline (close-on-context-done).
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := lenient.Call(cctx, "locals", "run", nil); !errors.Is(err, host.ErrTimeout) {
		t.Fatalf("spinning unmetered guest = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stopped after %s", d)
	}
}
