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
