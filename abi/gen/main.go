package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
)

func main() {
	root := flag.String("root", "..", "repository root")
	check := flag.Bool("check", false, "report files that are out of date instead of writing them")
	flag.Parse()
	files, err := Files()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	stale := 0
	for _, f := range files {
		path := filepath.Join(*root, f.Path)
		if *check {
			if old, err := os.ReadFile(path); err != nil || !bytes.Equal(old, f.Data) {
				fmt.Fprintf(os.Stderr, "gen: %s is out of date; run go generate ./abi\n", f.Path)
				stale++
			}
			continue
		}
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
	if stale > 0 {
		os.Exit(1)
	}
}

// File is one generated file, its path relative to the repository root.
type File struct {
	Path string
	Data []byte
}

// fn is one imported function with named parameters.
type fn struct {
	Module  string
	Name    string
	Params  []param
	Results []abi.ValueType
	Doc     string
}

type param struct {
	Name string
	Type abi.ValueType
}

// extismSigs are the signatures of the Extism kernel and host functions.
var extismSigs = map[string]fn{
	"alloc":            {Params: ps("n"), Results: r64, Doc: "allocate a block of n bytes, return its handle"},
	"free":             {Params: ps("h"), Doc: "free a block"},
	"length":           {Params: ps("h"), Results: r64, Doc: "length of a block, 0 for a bad handle"},
	"length_unsafe":    {Params: ps("h"), Results: r64, Doc: "length of a block, unchecked"},
	"load_u8":          {Params: ps("h"), Results: r32, Doc: "byte at handle h"},
	"load_u64":         {Params: ps("h"), Results: r64, Doc: "8 bytes at handle h, little endian"},
	"store_u8":         {Params: []param{{"h", abi.I64}, {"v", abi.I32}}, Doc: "store a byte at handle h"},
	"store_u64":        {Params: ps("h", "v"), Doc: "store 8 bytes at handle h, little endian"},
	"input_length":     {Results: r64, Doc: "length of the call's input"},
	"input_load_u8":    {Params: ps("i"), Results: r32, Doc: "input byte i"},
	"input_load_u64":   {Params: ps("i"), Results: r64, Doc: "input bytes i..i+8, little endian"},
	"input_offset":     {Results: r64, Doc: "handle of the input block"},
	"output_set":       {Params: ps("h", "n"), Doc: "the call's output is the n bytes at handle h"},
	"error_set":        {Params: ps("h"), Doc: "the call's error message is the block at handle h"},
	"error_get":        {Results: r64, Doc: "handle of the current error message, or 0"},
	"config_get":       {Params: ps("key"), Results: r64, Doc: "handle of a config value, or 0; the caller frees key and the value"},
	"var_get":          {Params: ps("key"), Results: r64, Doc: "handle of an instance variable, or 0; the host frees key, the caller the value"},
	"var_set":          {Params: ps("key", "value"), Doc: "set an instance variable (value 0 deletes); the host frees both"},
	"http_request":     {Params: ps("req", "body"), Results: r64, Doc: "HTTP request to an allowed host; returns the body handle"},
	"http_status_code": {Results: r32, Doc: "status code of the last HTTP request"},
	"http_headers":     {Results: r64, Doc: "handle of the JSON headers of the last HTTP response, or 0"},
	"log_trace":        {Params: ps("h"), Doc: "log the block at trace level (the host frees it)"},
	"log_debug":        {Params: ps("h"), Doc: "log the block at debug level (the host frees it)"},
	"log_info":         {Params: ps("h"), Doc: "log the block at info level (the host frees it)"},
	"log_warn":         {Params: ps("h"), Doc: "log the block at warn level (the host frees it)"},
	"log_error":        {Params: ps("h"), Doc: "log the block at error level (the host frees it)"},
	"get_log_level":    {Results: r32, Doc: "the host's log level: 0 trace … 4 error"},
}

var (
	r32 = []abi.ValueType{abi.I32}
	r64 = []abi.ValueType{abi.I64}
)

func ps(names ...string) []param {
	out := make([]param, len(names))
	for i, n := range names {
		out[i] = param{n, abi.I64}
	}
	return out
}

// functions returns the Extism functions then bulkhead's, in abi order.
func functions() (extism, host []fn, err error) {
	seen := map[string]bool{}
	for _, name := range abi.ExtismFunctions() {
		f, ok := extismSigs[name]
		if !ok {
			return nil, nil, fmt.Errorf("abi.ExtismFunctions lists %q but gen knows no signature for it", name)
		}
		seen[name] = true
		f.Module, f.Name = abi.ExtismModule, name
		extism = append(extism, f)
	}
	for name := range extismSigs {
		if !seen[name] {
			return nil, nil, fmt.Errorf("gen has a signature for %q, which abi.ExtismFunctions does not list", name)
		}
	}
	for _, hf := range abi.HostFunctions() {
		f := fn{Module: abi.HostModule, Name: hf.Name, Results: hf.Results, Doc: hf.Doc}
		for i, t := range hf.Params {
			f.Params = append(f.Params, param{fmt.Sprintf("a%d", i), t})
		}
		host = append(host, f)
	}
	return extism, host, nil
}

// constant is one named value every SDK carries.
type constant struct {
	Name  string // upper snake case
	Value any    // string or int32
	Doc   string
}

func constants() []constant {
	return []constant{
		{"ABI_VERSION", abi.Version, "version of the host–guest contract"},
		{"EXTISM_MODULE", abi.ExtismModule, "import module of the Extism kernel and host"},
		{"HOST_MODULE", abi.HostModule, "import module of bulkhead's host functions"},
		{"EXPORT_RUN", abi.ExportRun, "export called when a node names none"},
		{"EXPORT_DESCRIBE", abi.ExportDescribe, "optional export returning a JSON description"},
		{"EXPORT_HEALTH", abi.ExportHealth, "optional export; 0 means healthy"},
		{"CODE_OK", int32(abi.CodeOK), "success"},
		{"CODE_RETRYABLE", int32(abi.CodeRetryable), "failure another attempt may fix"},
		{"CODE_PERMANENT", int32(abi.CodePermanent), "failure no attempt can fix; never retried"},
		{"HOST_OK", abi.HostOK, "host function result: done"},
		{"HOST_FAILED", abi.HostFailed, "host function result: the store failed"},
		{"HOST_UNAVAILABLE", abi.HostUnavailable, "host function result: no durable store in this call"},
		{"HOST_TOO_LARGE", abi.HostTooLarge, "host function result: over the host's size limit"},
		{"HOST_QUOTA", abi.HostQuota, "host function result: the plugin's state quota is used up"},
		{"MAX_CHECKPOINT_BYTES", int32(abi.DefaultMaxCheckpoint), "default cap of one checkpoint"},
		{"MAX_STATE_KEY_BYTES", int32(abi.DefaultMaxStateKey), "default cap of a state key"},
		{"MAX_STATE_VALUE_BYTES", int32(abi.DefaultMaxStateValue), "default cap of a state value"},
		{"MAX_PROGRESS_BYTES", int32(abi.DefaultMaxProgress), "default cap of a progress report"},
		{"MAX_ERROR_BYTES", int32(abi.DefaultMaxErrorBytes), "default cap of an error message"},
		{"STATE_KEYS", int32(abi.DefaultStateKeys), "default quota of keys of a plugin's state"},
		{"STATE_BYTES", int32(abi.DefaultStateBytes), "default quota of bytes (keys plus values) of a plugin's state"},
	}
}

const header = "Code generated by go generate ./abi (abi/gen) from package abi; DO NOT EDIT."

// Files returns every generated file.
func Files() ([]File, error) {
	ext, host, err := functions()
	if err != nil {
		return nil, err
	}
	consts := constants()
	return []File{
		{"sdk-guest/rust/src/abi.rs", rust(consts, ext, host)},
		{"sdk-guest/c/bulkhead_abi.h", c(consts, ext, host)},
		{"sdk-guest/assemblyscript/assembly/abi.ts", assemblyScript(consts, ext, host)},
		{"sdk-guest/go/abi.go", goSDK(consts)},
	}, nil
}

func lit(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}

func rust(consts []constant, ext, host []fn) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "// %s\n\n//! The bulkhead ABI: constants and raw imports.\n#![allow(dead_code)]\n\n", header)
	for _, k := range consts {
		typ := "&str"
		if _, ok := k.Value.(int32); ok {
			typ = "i32"
		}
		fmt.Fprintf(&b, "/// %s.\npub const %s: %s = %s;\n", upperFirst(k.Doc), k.Name, typ, lit(k.Value))
	}
	rt := map[abi.ValueType]string{abi.I32: "i32", abi.I64: "u64"}
	block := func(mod, modName string, fns []fn) {
		fmt.Fprintf(&b, "\n/// Imports of module %q.\npub mod %s {\n    #[link(wasm_import_module = %q)]\n    extern \"C\" {\n", modName, mod, modName)
		for _, f := range fns {
			var args []string
			for _, p := range f.Params {
				args = append(args, p.Name+": "+rt[p.Type])
			}
			ret := ""
			if len(f.Results) == 1 {
				ret = " -> " + rt[f.Results[0]]
			}
			fmt.Fprintf(&b, "        /// %s.\n        #[link_name = %q]\n        pub fn %s(%s)%s;\n", upperFirst(f.Doc), f.Name, f.Name, strings.Join(args, ", "), ret)
		}
		b.WriteString("    }\n}\n")
	}
	block("extism", abi.ExtismModule, ext)
	block("host", abi.HostModule, host)
	return []byte(b.String())
}

func c(consts []constant, ext, host []fn) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "/* %s */\n\n/* The bulkhead ABI: constants and raw imports. */\n#ifndef BULKHEAD_ABI_H\n#define BULKHEAD_ABI_H\n\n#include <stdint.h>\n\n", header)
	for _, k := range consts {
		fmt.Fprintf(&b, "/* %s */\n#define BH_%s %s\n", upperFirst(k.Doc), k.Name, lit(k.Value))
	}
	ct := map[abi.ValueType]string{abi.I32: "int32_t", abi.I64: "uint64_t"}
	block := func(prefix, modName string, fns []fn) {
		fmt.Fprintf(&b, "\n/* Imports of module %q. */\n", modName)
		for _, f := range fns {
			var args []string
			for _, p := range f.Params {
				args = append(args, ct[p.Type]+" "+p.Name)
			}
			if len(args) == 0 {
				args = []string{"void"}
			}
			ret := "void"
			if len(f.Results) == 1 {
				ret = ct[f.Results[0]]
			}
			fmt.Fprintf(&b, "/* %s */\n__attribute__((import_module(%q), import_name(%q)))\nextern %s %s%s(%s);\n",
				upperFirst(f.Doc), modName, f.Name, ret, prefix, f.Name, strings.Join(args, ", "))
		}
	}
	block("bh_extism_", abi.ExtismModule, ext)
	block("bh_host_", abi.HostModule, host)
	b.WriteString("\n#endif /* BULKHEAD_ABI_H */\n")
	return []byte(b.String())
}

func assemblyScript(consts []constant, ext, host []fn) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "// %s\n\n// The bulkhead ABI: constants and raw imports.\n\n", header)
	for _, k := range consts {
		typ := "string"
		if _, ok := k.Value.(int32); ok {
			typ = "i32"
		}
		fmt.Fprintf(&b, "/** %s. */\nexport const %s: %s = %s;\n", upperFirst(k.Doc), k.Name, typ, lit(k.Value))
	}
	at := map[abi.ValueType]string{abi.I32: "i32", abi.I64: "u64"}
	block := func(prefix, modName string, fns []fn) {
		fmt.Fprintf(&b, "\n// Imports of module %q.\n", modName)
		for _, f := range fns {
			var args []string
			for _, p := range f.Params {
				args = append(args, p.Name+": "+at[p.Type])
			}
			ret := "void"
			if len(f.Results) == 1 {
				ret = at[f.Results[0]]
			}
			fmt.Fprintf(&b, "/** %s. */\n// @ts-ignore: decorator\n@external(%q, %q)\nexport declare function %s%s(%s): %s;\n",
				upperFirst(f.Doc), modName, f.Name, prefix, f.Name, strings.Join(args, ", "), ret)
		}
	}
	block("extism_", abi.ExtismModule, ext)
	block("host_", abi.HostModule, host)
	return []byte(b.String())
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// goSDK writes the Go SDK's copy of the contract: the shared constants
// (unexported, in Go's case) and the JSON types a guest exchanges with the
// host, so that the SDK module needs nothing but the standard library.
func goSDK(consts []constant) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "// %s\n\n//go:build wasip1\n\npackage bulkhead\n\nimport \"time\"\n\n", header)
	b.WriteString("// The bulkhead ABI: constants.\nconst (\n")
	for _, k := range consts {
		fmt.Fprintf(&b, "\t// %s.\n\t%s = %s\n", upperFirst(k.Doc), goName(k.Name), lit(k.Value))
	}
	fmt.Fprintf(&b, "\t// Config key the host sets for every plugin: the automatic checkpoint interval, as a duration such as \"10s\".\n\tconfigCheckpointInterval = %q\n", abi.ConfigCheckpointInterval)
	fmt.Fprintf(&b, "\t// The host's value of configCheckpointInterval.\n\tdefaultCheckpointInterval = %s\n)\n", goDuration(abi.DefaultCheckpointInterval))
	goStruct(&b, "InvocationInfo", "InvocationInfo is what the host says about the current call (see Invocation). For a call outside a workflow run (bulkhead call, the HTTP call endpoint) the run fields are empty; Attempt counts from 1; DeadlineUnixMS is 0 when the call has no deadline.", reflect.TypeOf(abi.Invocation{}))
	goStruct(&b, "progress", "progress is the JSON a guest passes to the host's progress function.", reflect.TypeOf(abi.Progress{}))
	out, err := format.Source([]byte(b.String()))
	if err != nil {
		panic(fmt.Sprintf("gen: Go SDK source does not format: %v", err))
	}
	return out
}

func goStruct(b *strings.Builder, name, doc string, t reflect.Type) {
	fmt.Fprintf(b, "\n// %s\ntype %s struct {\n", doc, name)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fmt.Fprintf(b, "\t%s %s `json:%q`\n", f.Name, f.Type.String(), f.Tag.Get("json"))
	}
	b.WriteString("}\n")
}

func goDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%d * time.Second", d/time.Second)
	}
	return fmt.Sprintf("%d * time.Millisecond", d/time.Millisecond)
}

// goName turns ABI_VERSION into abiVersion and CODE_OK into codeOK.
func goName(upperSnake string) string {
	parts := strings.Split(strings.ToLower(upperSnake), "_")
	for i := 1; i < len(parts); i++ {
		switch parts[i] {
		case "ok", "abi", "id":
			parts[i] = strings.ToUpper(parts[i])
		default:
			parts[i] = upperFirst(parts[i])
		}
	}
	return strings.Join(parts, "")
}
