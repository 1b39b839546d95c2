package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fileA = `package a

import (
	"path/filepath"
	"slices"
)

var _ = filepath.Join
var _ = slices.Sort[[]string]
var _ interface{} = (*T)(nil)

type T struct{}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

func maps() {}

func Exported(x int) int { return x + 1 }
`

const fileB = `package b

func cut(version string) string {
	if len(version) > 12 {
		return version[:12]
	}
	return version
}

func other(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}

func Exported(y int) int { return y + 1 }
`

func write(t *testing.T, files map[string]string) []string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	var paths []string
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, name)
	}
	return paths
}

func TestRun_Findings(t *testing.T) {
	paths := write(t, map[string]string{"a.go": fileA, "b.go": fileB})
	var out, errOut bytes.Buffer
	if code := run(paths, nil, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"var _ = filepath.Join only keeps an unused import",
		"var _ = slices.Sort only keeps an unused import",
		"maps hides the standard package maps",
		"same function body 2 times: a.go:14:1 (short), b.go:3:1 (cut)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"other", "Exported", "(*T)(nil)"} {
		if strings.Contains(got, not) {
			t.Errorf("output reports %q, which is no copy:\n%s", not, got)
		}
	}
}

func TestRun_Exceptions(t *testing.T) {
	paths := write(t, map[string]string{"a.go": fileA, "b.go": fileB})
	for _, tt := range []struct {
		name string
		give string
		want int
		out  string
	}{
		{
			name: "all excused",
			give: "import-keeper a.go filepath.Join  # r\nimport-keeper a.go slices.Sort # r\nshadows-std a.go # r\nsame-func b.go,a.go  # r\n",
			want: 0,
		},
		{
			name: "one left",
			give: "import-keeper a.go # r\nsame-func a.go,b.go  # r\n",
			want: 1, out: "maps hides",
		},
		{
			name: "excuses nothing",
			give: "import-keeper a.go # r\nshadows-std a.go # r\nsame-func a.go,b.go  # r\nclone a.go,b.go # r\n",
			want: 1, out: "exception matches nothing: clone a.go,b.go",
		},
		{name: "no reason", give: "shadows-std a.go\n", want: 2},
		{name: "unknown kind", give: "typo a.go # r\n", want: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile("ex.txt", []byte(tt.give), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			code := run(append([]string{"-exceptions", "ex.txt"}, paths...), nil, &out, &errOut)
			if code != tt.want {
				t.Fatalf("exit %d, want %d; out: %s; err: %s", code, tt.want, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tt.out) {
				t.Errorf("output lacks %q:\n%s", tt.out, out.String())
			}
		})
	}
}

func TestRun_Clones(t *testing.T) {
	paths := write(t, map[string]string{"b.go": fileB})
	clones := "x.go:1-9: duplicate of y.go:3-11\ny.go:3-11: duplicate of x.go:1-9\n"
	var out, errOut bytes.Buffer
	if code := run(append([]string{"-clones", "-"}, paths...), strings.NewReader(clones), &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut.String())
	}
	if out.String() != clones {
		t.Errorf("got %q, want dupl's lines back", out.String())
	}
	if code := run(append([]string{"-clones", "-"}, paths...), strings.NewReader("garbage\n"), &out, &errOut); code != 2 {
		t.Errorf("garbage clones: exit %d, want 2", code)
	}
}
