package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/bulkhead-run/bulkhead/statestore"
)

func TestScrubError(t *testing.T) {
	const url = "postgres://u:s3cret@db/bh"
	err := ScrubError(fmt.Errorf("connect as u:s3cret: %w", statestore.ErrUnavailable), url)
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "u:xxxxx") || !errors.Is(err, statestore.ErrUnavailable) {
		t.Fatalf("ScrubError = %v", err)
	}
	plain := errors.New("no password here")
	if got := ScrubError(plain, url); got != plain {
		t.Fatalf("ScrubError changed an error without the password: %v", got)
	}
}

func TestOpenStore_BadURL(t *testing.T) {
	_, err := OpenStore(context.Background(), StoreOptions{URL: "mysql://u:s3cret@db/bh", DataDir: t.TempDir()})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("OpenStore with a mysql URL: %v", err)
	}
}

func TestOpenStore_Embedded(t *testing.T) {
	s, err := OpenStore(context.Background(), StoreOptions{DataDir: t.TempDir(), MaxCheckpoints: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateRun(context.Background(), statestore.Run{ID: "r", Workflow: "w"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
