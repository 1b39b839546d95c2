package main

import "testing"

func TestUserMessage(t *testing.T) {
	tests := []struct{ name, give, want string }{
		{"unknown key", "flow.yaml:3: policy: field max_attemps not found in type resilience.RetryPolicy",
			`flow.yaml:3: policy: unknown key "max_attemps"`},
		{"two unknown keys", "p.yaml:1: policy: field a not found in type resilience.RetryPolicy; field b not found in type resilience.Policy",
			`p.yaml:1: policy: unknown key "a"; unknown key "b"`},
		{"no type", "c.yaml:2: field policy not found", `c.yaml:2: unknown key "policy"`},
		{"list for string", "c.yaml:1: cannot unmarshal !!seq into string", "c.yaml:1: want a string, got a list"},
		{"bad duration", "x.yaml:4: cannot unmarshal !!str `soon` into resilience.Duration", "x.yaml:4: want a duration such as 30s, got a string (soon)"},
		{"untouched", "plugins/p.wasm: not a WebAssembly module", "plugins/p.wasm: not a WebAssembly module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := userMessage(tt.give); got != tt.want {
				t.Errorf("userMessage(%q)\n got %q\nwant %q", tt.give, got, tt.want)
			}
		})
	}
}
