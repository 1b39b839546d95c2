package abi

import "testing"

func TestManifest_ValidateMaxStack(t *testing.T) {
	tests := []struct {
		name string
		give Size
		ok   bool
	}{
		{"default", 0, true},
		{"small", 64 << 10, true},
		{"largest", MaxStackLimit, true},
		{"negative", -1, false},
		{"over the limit", MaxStackLimit + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Manifest{MaxStack: tt.give}.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}
