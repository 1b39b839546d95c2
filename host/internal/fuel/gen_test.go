package fuel

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/tetratelabs/wazero"
)

// TestInstrument_RandomPrograms generates random structured programs
// (nested blocks, ifs and loops, br, br_if and br_table to any enclosing
// label, returns from inside loops, loops with results, memory.fill) and
// runs each bare, metered plain and metered with small loops unrolled: the
// three give the same result, and plain and unrolled use exactly the same
// fuel. Every loop header decrements a guard global and returns when it is
// spent, so every program ends.
func TestInstrument_RandomPrograms(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 300
	}
	r := newRuntime(t, false)
	unrolledSome := 0
	for seed := range uint64(n) {
		if runProgram(t, r, seed) {
			unrolledSome++
		}
	}
	// The generator must exercise unrolling, not only the plain form.
	if unrolledSome < n/4 {
		t.Fatalf("only %d of %d programs had a loop unrolled", unrolledSome, n)
	}
}

// FuzzRandomPrograms explores seeds of the generator beyond the test's.
func FuzzRandomPrograms(f *testing.F) {
	f.Add(uint64(0))
	r := newRuntime(f, false)
	f.Fuzz(func(t *testing.T, seed uint64) { runProgram(t, r, seed) })
}

// runProgram generates the program of seed, runs it bare, metered plain
// and metered unrolled, and fails t unless the results agree and plain and
// unrolled use the same fuel. It reports whether a loop was unrolled.
func runProgram(t *testing.T, r wazero.Runtime, seed uint64) bool {
	t.Helper()
	ctx := context.Background()
	wasm := genProgram(seed)
	plain, err := Instrument(wasm, Options{noUnroll: true})
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	unrolled := instrument(t, wasm)
	var results [3]uint64
	var fuel [3]int64
	for i, w := range [][]byte{wasm, plain, unrolled} {
		cm, err := r.CompileModule(ctx, w)
		if err != nil {
			t.Fatalf("seed %d, variant %d: %v", seed, i, err)
		}
		mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatalf("seed %d, variant %d: %v", seed, i, err)
		}
		m := NewMeter(0, 0)
		res, err := mod.ExportedFunction("run").Call(WithMeter(ctx, m), seed)
		if err != nil {
			t.Fatalf("seed %d, variant %d: %v", seed, i, err)
		}
		results[i], fuel[i] = res[0], m.Used()
		_ = mod.Close(ctx)
		_ = cm.Close(ctx)
	}
	if results[0] != results[1] || results[0] != results[2] {
		t.Fatalf("seed %d: results bare %d, plain %d, unrolled %d", seed, results[0], results[1], results[2])
	}
	if fuel[1] != fuel[2] || fuel[1] <= 0 {
		t.Fatalf("seed %d: fuel plain %d, unrolled %d", seed, fuel[1], fuel[2])
	}
	return len(unrolled) != len(plain)
}

// genProgram returns a module with one export, run(x i32) -> i32, whose
// body is random structured code over two locals.
func genProgram(seed uint64) []byte {
	g := &gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	g.noLoops = g.rng.IntN(3) == 0 // loop-free: recursion is its only repetition
	// Function 1: x is local 0, a and b are locals 1 and 2; global 0 is
	// the guard.
	g.code = append(g.code, 1, 2, 0x7f)       // two i32 locals
	g.code = append(g.code, 0x20, 0, 0x21, 1) // a = x
	g.stmts(0, 4+g.rng.IntN(6))
	g.code = append(g.code, 0x20, 1, 0x20, 2, 0x73, 0x0b) // a ^ b; end
	// Function 0, run(x): guard = 300; f1(x).
	run := []byte{0, 0x41}
	run = appendS64(run, 300)
	run = append(run, 0x24, 0, 0x20, 0, 0x10, 1, 0x0b)

	var m []byte
	m = append(m, 0, 'a', 's', 'm', 1, 0, 0, 0)
	m = appendSection(m, secType, []byte{1, 0x60, 1, 0x7f, 1, 0x7f})
	m = appendSection(m, secFunction, []byte{2, 0, 0})
	m = appendSection(m, secMemory, []byte{1, 0, 1})
	m = appendSection(m, secGlobal, []byte{1, 0x7f, 1, 0x41, 0, 0x0b})
	m = appendSection(m, secExport, append(appendName([]byte{1}, "run"), 0, 0)) // func 0
	code := []byte{2}
	code = append(appendU32(code, uint32(len(run))), run...)
	code = append(appendU32(code, uint32(len(g.code))), g.code...)
	return appendSection(m, secCode, code)
}

type gen struct {
	rng  *rand.Rand
	code []byte
	// labels open around the current point, innermost last; none has a
	// branch type (blocks and ifs are empty, loops have no parameters).
	labels  int
	noLoops bool
}

// stmts appends n stack-neutral statements.
func (g *gen) stmts(depth, n int) {
	for range n {
		g.stmt(depth)
	}
}

func (g *gen) stmt(depth int) {
	k := g.rng.IntN(14)
	if depth >= 4 && k >= 6 && k < 12 {
		k = g.rng.IntN(6) // deep enough: no more nesting
	}
	if g.noLoops && (k == 7 || k == 8 || k == 11) {
		k = 6
	}
	switch k {
	case 12: // if guard != 0 { guard--; b = f1(a) }
		g.code = append(g.code, 0x23, 0, 0x04, 0x40, 0x23, 0, 0x41, 1, 0x6b, 0x24, 0)
		g.code = append(g.code, 0x20, 1, 0x10, 1, 0x21, 2, 0x0b)
	case 13: // return a, as a conditional branch to the function's label
		g.code = append(g.code, 0x20, 1)
		g.cond()
		g.code = append(g.code, 0x0d)
		g.code = appendU32(g.code, uint32(g.labels))
		g.code = append(g.code, 0x1a) // drop when not taken
	case 0, 1, 2: // a or b = expression
		g.expr()
		g.code = append(g.code, 0x21, byte(1+g.rng.IntN(2)))
	case 3: // br_if to an enclosing label
		if g.labels == 0 {
			return
		}
		g.cond()
		g.code = append(g.code, 0x0d)
		g.code = appendU32(g.code, uint32(g.rng.IntN(g.labels)))
	case 4: // return a, rarely and only conditionally
		g.cond()
		g.code = append(g.code, 0x04, 0x40, 0x20, 1, 0x0f, 0x0b)
	case 5: // memory.fill(a & 255, b, b & 63)
		g.code = append(g.code, 0x20, 1, 0x41)
		g.code = appendS64(g.code, 255)
		g.code = append(g.code, 0x71, 0x20, 2, 0x20, 2, 0x41)
		g.code = appendS64(g.code, 63)
		g.code = append(g.code, 0x71, 0xfc, 11, 0)
	case 6: // block
		g.nest(0x02, depth)
	case 7, 8: // loop
		g.loop(depth)
	case 9: // if/else
		g.cond()
		g.code = append(g.code, 0x04, 0x40)
		g.labels++
		g.stmts(depth+1, 1+g.rng.IntN(2))
		if g.rng.IntN(2) == 0 {
			g.code = append(g.code, 0x05)
			g.stmts(depth+1, 1+g.rng.IntN(2))
		}
		g.labels--
		g.code = append(g.code, 0x0b)
	case 10: // br_table over enclosing labels
		if g.labels == 0 {
			return
		}
		g.expr()
		n := 1 + g.rng.IntN(3)
		g.code = append(g.code, 0x0e)
		g.code = appendU32(g.code, uint32(n))
		for range n + 1 {
			g.code = appendU32(g.code, uint32(g.rng.IntN(g.labels)))
		}
	case 11: // a loop with an i32 result, stored in b
		g.code = append(g.code, 0x03, 0x7f)
		g.guard()
		g.labels++
		g.stmts(depth+1, 1+g.rng.IntN(2))
		g.cond()
		g.code = append(g.code, 0x0d, 0) // br_if the loop
		g.labels--
		g.code = append(g.code, 0x20, 1, 0x0b, 0x21, 2)
	}
}

// nest appends a block (op 0x02) around a few statements.
func (g *gen) nest(op byte, depth int) {
	g.code = append(g.code, op, 0x40)
	g.labels++
	g.stmts(depth+1, 1+g.rng.IntN(3))
	g.labels--
	g.code = append(g.code, 0x0b)
}

// loop appends a loop that mostly runs a few times: guard, statements,
// then a conditional branch back.
func (g *gen) loop(depth int) {
	g.code = append(g.code, 0x03, 0x40)
	g.guard()
	g.labels++
	g.stmts(depth+1, 1+g.rng.IntN(2))
	g.cond()
	g.code = append(g.code, 0x0d, 0)
	g.labels--
	g.code = append(g.code, 0x0b)
}

// guard appends: if guard == 0 { return a }; guard--.
func (g *gen) guard() {
	g.code = append(g.code, 0x23, 0, 0x45, 0x04, 0x40, 0x20, 1, 0x0f, 0x0b)
	g.code = append(g.code, 0x23, 0, 0x41, 1, 0x6b, 0x24, 0)
}

// expr appends an i32 expression over a, b and constants.
func (g *gen) expr() {
	g.code = append(g.code, 0x20, byte(1+g.rng.IntN(2)))
	g.code = append(g.code, 0x41)
	g.code = appendS64(g.code, int64(g.rng.IntN(100)-50))
	g.code = append(g.code, []byte{0x6a, 0x6b, 0x6c, 0x73, 0x71, 0x72}[g.rng.IntN(6)])
}

// cond appends an i32 condition that holds about half the time.
func (g *gen) cond() {
	g.code = append(g.code, 0x20, byte(1+g.rng.IntN(2)))
	g.code = append(g.code, 0x41)
	g.code = appendS64(g.code, int64(1+g.rng.IntN(3)))
	g.code = append(g.code, 0x71) // i32.and: a low bit
}
