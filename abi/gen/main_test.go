package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/abi"
)

// The committed SDK files must be what gen writes today: a change in package
// abi without `go generate ./abi` fails here.
func TestFiles_UpToDate(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		old, err := os.ReadFile(filepath.Join("..", "..", f.Path))
		if err != nil {
			t.Fatalf("%s: %v; run go generate ./abi", f.Path, err)
		}
		if !bytes.Equal(old, f.Data) {
			t.Errorf("%s is out of date; run go generate ./abi", f.Path)
		}
	}
}

// Every generated file names every function and code of the contract.
func TestFiles_CoverTheABI(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	names = append(names, abi.ExtismFunctions()...)
	for _, hf := range abi.HostFunctions() {
		names = append(names, hf.Name)
	}
	for _, f := range files {
		s := string(f.Data)
		if !strings.Contains(s, "DO NOT EDIT.") {
			t.Errorf("%s has no generated-code header", f.Path)
		}
		if strings.HasSuffix(f.Path, ".go") {
			continue // the Go SDK declares its imports by hand (TestGoSDK_ImportsEveryHostFunction)
		}
		for _, n := range names {
			if !strings.Contains(s, `"`+n+`"`) {
				t.Errorf("%s does not import %s", f.Path, n)
			}
		}
		for _, v := range []string{abi.ExtismModule, abi.HostModule, abi.Version} {
			if !strings.Contains(s, `"`+v+`"`) {
				t.Errorf("%s lacks %q", f.Path, v)
			}
		}
	}
}

// The Go SDK's constants come from gen, its imports are written by hand:
// each of bulkhead's host functions must be imported from abi.HostModule,
// and the SDK module must need nothing but the standard library.
func TestGoSDK_ImportsEveryHostFunction(t *testing.T) {
	dir := filepath.Join("..", "..", "sdk-guest", "go")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			src.Write(b)
		}
	}
	for _, hf := range abi.HostFunctions() {
		if imp := "//go:wasmimport " + abi.HostModule + " " + hf.Name + "\n"; !strings.Contains(src.String(), imp) {
			t.Errorf("sdk-guest/go does not import %s (want %q)", hf.Name, imp)
		}
	}
	if strings.Contains(src.String(), `"github.com/`) {
		t.Error("sdk-guest/go imports a module; it must need only the standard library")
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mod, []byte("require")) || bytes.Contains(mod, []byte("replace")) {
		t.Errorf("sdk-guest/go/go.mod has dependencies:\n%s", mod)
	}
}

// The C header is what the docs page documents.
func TestDocs_NameEveryFunction(t *testing.T) {
	doc, err := os.ReadFile("../../docs/write-a-node.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, hf := range abi.HostFunctions() {
		if !bytes.Contains(doc, []byte(hf.Name)) {
			t.Errorf("docs/write-a-node.md does not document %s", hf.Name)
		}
	}
}

func TestFunctions_RejectsUnknownExtismName(t *testing.T) {
	delete(extismSigs, "alloc")
	defer func() { extismSigs["alloc"] = fn{Params: ps("n"), Results: r64} }()
	if _, _, err := functions(); err == nil || !strings.Contains(err.Error(), "alloc") {
		t.Fatalf("functions() = %v, want an error naming alloc", err)
	}
}
