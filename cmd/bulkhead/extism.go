package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bulkhead-run/bulkhead/abi"
)

// extismManifest is the part of an Extism manifest `bulkhead call
// --manifest` reads (https://extism.org/docs/concepts/manifest).
type extismManifest struct {
	Wasm []struct {
		Path string `json:"path"`
		URL  string `json:"url"`
		Hash string `json:"hash"`
		Name string `json:"name"`
	} `json:"wasm"`
	Memory struct {
		MaxPages uint32 `json:"max_pages"`
	} `json:"memory"`
	Config       map[string]string `json:"config"`
	AllowedHosts []string          `json:"allowed_hosts"`
	AllowedPaths map[string]string `json:"allowed_paths"`
	TimeoutMS    int64             `json:"timeout_ms"`
}

func readExtismManifest(file string) (*extismManifest, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, plainPathError(err)
	}
	var em extismManifest
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&em); err != nil {
		return nil, fmt.Errorf("%s: not an Extism manifest: %v", file, err)
	}
	switch {
	case len(em.Wasm) == 0:
		return nil, fmt.Errorf("%s: the manifest names no module (wasm: [{path: …} or {url: …}])", file)
	case len(em.Wasm) > 1:
		return nil, fmt.Errorf("%s: the manifest names %d modules; bulkhead loads one module per plugin", file, len(em.Wasm))
	case (em.Wasm[0].Path == "") == (em.Wasm[0].URL == ""):
		return nil, fmt.Errorf("%s: the manifest's module wants a path or a url", file)
	}
	return &em, nil
}

func (em *extismManifest) toManifest() (abi.Manifest, error) {
	m := abi.Manifest{Config: em.Config, AllowedHosts: em.AllowedHosts, AllowedPaths: em.AllowedPaths}
	if em.Memory.MaxPages > 0 {
		m.Memory = abi.Size(em.Memory.MaxPages) * 64 << 10
	}
	if em.TimeoutMS < 0 {
		return m, fmt.Errorf("timeout_ms must not be negative, got %d", em.TimeoutMS)
	}
	return m, nil
}

// maxDownload caps a module fetched from a URL.
const maxDownload = 256 << 20

// fetchModule reads a module from a file, or from an http(s) URL when
// download allows it, and checks its SHA-256 when hash is set.
func fetchModule(ctx context.Context, file, url, hash string, download bool) ([]byte, error) {
	if url == "" && (strings.HasPrefix(file, "http://") || strings.HasPrefix(file, "https://")) {
		url = file
	}
	var b []byte
	var err error
	if url != "" {
		if !download {
			return nil, fmt.Errorf("%s is a URL: add --allow-download to fetch it", url)
		}
		b, err = download1(ctx, url)
	} else {
		b, err = os.ReadFile(file)
		err = plainPathError(err)
	}
	if err != nil {
		return nil, err
	}
	if hash != "" {
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, hash) {
			return nil, fmt.Errorf("module hash mismatch: the manifest wants sha256 %s, the module has %s", hash, got)
		}
	}
	return b, nil
}

func download1(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	client := &http.Client{}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDownload+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if len(b) > maxDownload {
		return nil, errors.New("download " + url + ": the module is over 256 MiB")
	}
	return b, nil
}
