package scaffold

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
	"github.com/bulkhead-run/bulkhead/host"
	"github.com/bulkhead-run/bulkhead/host/hosttest"
)

const repo = "../../../.."

// toolchain returns make variables that select the language's compiler, or
// a reason to skip when it is absent.
func toolchain(t *testing.T, lang string) (vars []string, skip string) {
	if _, err := exec.LookPath("make"); err != nil {
		return nil, "make is not installed"
	}
	switch lang {
	case Go:
		// go test puts its own toolchain's bin first in PATH.
		goBin, err := exec.LookPath("go")
		if err != nil {
			return nil, "go is not in PATH"
		}
		return []string{"GO=" + goBin}, ""
	case Rust:
		rustc := "/usr/bin/rustc" // Debian's, with the wasm32-wasi std
		if _, err := os.Stat(rustc); err != nil {
			if rustc, err = exec.LookPath("rustc"); err != nil {
				return nil, "rustc is not installed (Debian: apt-get install rustc libstd-rust-dev-wasm32)"
			}
		}
		out, err := exec.Command(rustc, "--print", "sysroot").Output()
		if err != nil {
			return nil, "rustc --print sysroot: " + err.Error()
		}
		for _, target := range []string{"wasm32-wasip1", "wasm32-wasi"} {
			if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(out)), "lib/rustlib", target)); err == nil {
				return []string{"RUSTC=" + rustc}, ""
			}
		}
		return nil, rustc + " has no WASI standard library (Debian: libstd-rust-dev-wasm32; rustup: rustup target add wasm32-wasip1)"
	case C:
		clang, err := exec.LookPath("clang")
		if err != nil {
			return nil, "clang is not installed (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)"
		}
		probe := exec.Command(clang, "--target=wasm32-wasi", "-mexec-model=reactor", "-o", os.DevNull, "-x", "c", "-")
		probe.Stdin = strings.NewReader("#include <stdio.h>\nint x;\n")
		if out, err := probe.CombinedOutput(); err != nil {
			return nil, "clang cannot build for wasm32-wasi (Debian: wasi-libc lld libclang-rt-14-dev-wasm32): " + firstLine(out)
		}
		return []string{"CLANG=" + clang}, ""
	case AssemblyScript:
		asc, err := filepath.Abs(filepath.Join(repo, "testdata/assemblyscript/node_modules/.bin/asc"))
		if err == nil {
			if _, err = os.Stat(asc); err == nil {
				return []string{"ASC=" + asc}, ""
			}
		}
		if asc, err := exec.LookPath("asc"); err == nil {
			return []string{"ASC=" + asc}, ""
		}
		return nil, "asc is not installed: run `make -C testdata assemblyscript` (npm ci) or npm install -g assemblyscript"
	}
	t.Fatalf("no toolchain probe for %s", lang)
	return nil, ""
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// TestWrite_BuildsAndRuns writes each language's project into an empty
// directory outside the checkout, builds it offline with its Makefile (no
// module proxy, no replace pointing back here) and calls the result through
// a bulkhead host. With BULKHEAD_REQUIRE_TOOLCHAINS=1 (CI) a missing
// toolchain fails the test instead of skipping it.
func TestWrite_BuildsAndRuns(t *testing.T) {
	h := hosttest.New(t)
	checkout, err := filepath.Abs(repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range Languages() {
		t.Run(lang, func(t *testing.T) {
			vars, skip := toolchain(t, lang)
			if skip != "" {
				if os.Getenv("BULKHEAD_REQUIRE_TOOLCHAINS") == "1" {
					t.Fatalf("%s toolchain absent: %s", lang, skip)
				}
				t.Skipf("%s toolchain absent: %s", lang, skip)
			}
			name := "hello-" + lang
			dir := filepath.Join(t.TempDir(), name)
			if rel, err := filepath.Rel(checkout, dir); err != nil || !strings.HasPrefix(rel, "..") {
				t.Fatalf("%s is inside the checkout %s", dir, checkout)
			}
			if err := Write(dir, lang, name); err != nil {
				t.Fatal(err)
			}
			readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
			if err != nil || strings.Count(strings.TrimSpace(string(readme)), "\n") != 2 {
				t.Fatalf("README.md should have three lines: %q, %v", readme, err)
			}
			cmd := exec.Command("make", vars...)
			cmd.Dir = dir
			// Offline, and blind to this checkout: no proxy, no workspace,
			// a fresh module cache.
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOPROXY=off", "GOFLAGS=-mod=mod", "GOMODCACHE="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("make: %v\n%s", err, out)
			}
			if lang == Go {
				if _, err := os.Stat(filepath.Join(dir, "go.sum")); err == nil {
					t.Error("the Go project needed a go.sum: its SDK has dependencies")
				}
				if strings.Contains(string(out), checkout) {
					t.Errorf("the Go build used the checkout:\n%s", out)
				}
			}
			wasm, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d bytes", name+".wasm", len(wasm))
			ctx := context.Background()
			if _, err := h.Load(ctx, name, wasm, abi.Manifest{}); err != nil {
				t.Fatal(err)
			}
			got, err := h.Call(ctx, name, "", []byte("wörld"))
			if err != nil || string(got) != "hello, wörld" {
				t.Fatalf("run(wörld) = %q, %v", got, err)
			}
			_, err = h.Call(ctx, name, "", nil)
			if !errors.Is(err, host.ErrPermanent) || !strings.Contains(err.Error(), "empty input") {
				t.Fatalf("run() = %v, want a permanent failure about the empty input", err)
			}
		})
	}
}

// A rustc without a WASI standard library gets told what to install.
func TestWrite_RustSaysWhatToInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dir := filepath.Join(t.TempDir(), "p")
	if err := Write(dir, Rust, "p"); err != nil {
		t.Fatal(err)
	}
	sysroot := t.TempDir() // a toolchain with no rustlib/wasm32-* at all
	fake := filepath.Join(t.TempDir(), "rustc")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho "+sysroot+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "RUSTC="+fake)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "rustup target add wasm32-wasip1") {
		t.Fatalf("make with a rustc lacking WASI = %v\n%s\nwant a failure saying what to install", err, out)
	}
	// And the target found is the one the toolchain has.
	for _, target := range []string{"wasm32-wasi", "wasm32-wasip1"} {
		if err := os.MkdirAll(filepath.Join(sysroot, "lib/rustlib", target), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("make", "-n", "RUSTC="+fake)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--target "+target+" ") {
			t.Fatalf("make -n with %s = %v\n%s", target, err, out)
		}
	}
}

func TestWrite_Refuses(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "main.c"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, dir, lang, node, want string }{
		{name: "bad name", dir: filepath.Join(dir, "a"), lang: Go, node: "Bad Name", want: "name"},
		{name: "unknown language", dir: filepath.Join(dir, "b"), lang: "cobol", node: "x", want: "unknown language"},
		{name: "non-empty directory", dir: full, lang: C, node: "x", want: "not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Write(tt.dir, tt.lang, tt.node)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Write = %v, want an error about %q", err, tt.want)
			}
		})
	}
	if err := Write(full, C, "x"); !errors.Is(err, ErrExists) {
		t.Fatalf("Write into a non-empty directory = %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "main.c")); string(b) != "mine" {
		t.Fatalf("Write changed a file of a non-empty directory: %q", b)
	}
	// An empty existing directory is fine.
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(empty, Rust, "ok-name"); err != nil {
		t.Fatalf("Write into an empty directory = %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "bulkhead", "src", "abi.rs")); err != nil {
		t.Fatalf("the Rust SDK is not vendored: %v", err)
	}
}

// The SDK copies vendored into projects must be today's SDK sources.
func TestEmbeddedSDKs_MatchSources(t *testing.T) {
	sources := map[string]string{
		"sdk/c":              "sdk-guest/c",
		"sdk/rust":           "sdk-guest/rust",
		"sdk/assemblyscript": "sdk-guest/assemblyscript/assembly",
		"sdk/_go":            "sdk-guest/go",
	}
	for embedded, src := range sources {
		err := fs.WalkDir(files, embedded, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			got, _ := files.ReadFile(p)
			want, err := os.ReadFile(filepath.Join(repo, src, strings.TrimSuffix(strings.TrimPrefix(p, embedded+"/"), ".txt")))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (%v); run go generate ./cmd/bulkhead/internal/scaffold", p, src, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// And nothing of the SDK is missing from the copy.
		entries, _ := os.ReadDir(filepath.Join(repo, src))
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".h") && !strings.HasSuffix(name, ".ts") && !strings.HasSuffix(name, ".go") && name != "Cargo.toml" && name != "go.mod" {
				continue
			}
			if name == "go.mod" {
				name = "go.mod.txt"
			}
			if _, err := fs.Stat(files, path.Join(embedded, name)); err != nil {
				t.Errorf("%s/%s is not vendored; run go generate ./cmd/bulkhead/internal/scaffold", src, e.Name())
			}
		}
	}
}
