package scaffold

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
)

//go:generate sh -c "rm -rf sdk && mkdir -p sdk/c sdk/rust/src sdk/assemblyscript sdk/_go && cp ../../../../sdk-guest/c/bulkhead.h ../../../../sdk-guest/c/bulkhead_abi.h sdk/c/ && cp ../../../../sdk-guest/rust/Cargo.toml sdk/rust/ && cp ../../../../sdk-guest/rust/src/*.rs sdk/rust/src/ && cp ../../../../sdk-guest/assemblyscript/assembly/*.ts sdk/assemblyscript/ && cp ../../../../sdk-guest/go/*.go sdk/_go/ && cp ../../../../sdk-guest/go/go.mod sdk/_go/go.mod.txt"

// templates hold each language's project; sdk holds copies of the SDKs,
// vendored into every project of that language. The Go copy sits in _go,
// which the go command skips, and its go.mod is stored as go.mod.txt (a
// go.mod would make the folder a module of its own, which embed refuses).
//
//go:embed templates sdk all:sdk/_go
var files embed.FS

// sdkDir is the folder of files holding lang's SDK.
func sdkDir(lang string) string {
	if lang == Go {
		return "sdk/_go"
	}
	return path.Join("sdk", lang)
}

// Language names accepted by Write.
const (
	Go             = "go"
	Rust           = "rust"
	C              = "c"
	AssemblyScript = "assemblyscript"
)

// Languages returns the languages Write knows, in a stable order.
func Languages() []string { return []string{Go, Rust, C, AssemblyScript} }

// ErrExists: the target directory exists and is not empty.
var ErrExists = errors.New("scaffold: directory exists and is not empty")

var validName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// Options change what Write produces.
type Options struct {
	// GoSDKDir, when set, is a bulkhead checkout whose sdk-guest/go a Go
	// project's go.mod uses instead of its vendored copy.
	GoSDKDir string
}

// Write creates dir (which must not exist or be empty) holding a
// ready-to-build node project called name in lang: its source, a Makefile,
// a three-line README and a vendored copy of the SDK in bulkhead/.
func Write(dir, lang, name string) error { return WriteWith(dir, lang, name, Options{}) }

// WriteWith is Write with options.
func WriteWith(dir, lang, name string, o Options) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("scaffold: name %q: want lower-case letters, digits, - and _, starting with a letter", name)
	}
	known := false
	for _, l := range Languages() {
		known = known || l == lang
	}
	if !known {
		return fmt.Errorf("scaffold: unknown language %q (want one of %s)", lang, strings.Join(Languages(), ", "))
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: %s", ErrExists, dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("scaffold: %w", err)
	}
	if o.GoSDKDir != "" {
		abs, err := filepath.Abs(o.GoSDKDir)
		if err != nil {
			return fmt.Errorf("scaffold: %w", err)
		}
		o.GoSDKDir = filepath.ToSlash(abs)
	}
	data := struct {
		Name, Ident, GoSDKDir string
	}{name, strings.ReplaceAll(name, "-", "_"), o.GoSDKDir}

	out := map[string][]byte{} // relative path -> content
	root := path.Join("templates", lang)
	err := fs.WalkDir(files, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(p, root+"/"), ".tmpl")
		b, err := render(p, data)
		if err != nil {
			return err
		}
		out[rel] = b
		return nil
	})
	if err != nil {
		return err
	}
	if out[".gitignore"], err = render("templates/gitignore.tmpl", data); err != nil {
		return err
	}
	sdk := sdkDir(lang)
	err = fs.WalkDir(files, sdk, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		out[path.Join("bulkhead", strings.TrimSuffix(strings.TrimPrefix(p, sdk+"/"), ".txt"))] = b
		return err
	})
	if err != nil {
		return err
	}
	for rel, b := range out {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("scaffold: %w", err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("scaffold: %w", err)
		}
	}
	return nil
}

func render(p string, data any) ([]byte, error) {
	src, err := files.ReadFile(p)
	if err != nil {
		return nil, err
	}
	t, err := template.New(path.Base(p)).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("scaffold: template %s: %w", p, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("scaffold: template %s: %w", p, err)
	}
	return []byte(b.String()), nil
}
