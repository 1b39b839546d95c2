package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/bulkhead-run/bulkhead/plugins"
)

func TestServer_MapErrorPlugins(t *testing.T) {
	s := &Server{}
	for _, tt := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("reload ghost: %w", plugins.ErrNotFound), http.StatusNotFound},
		{fmt.Errorf("reload ../x: %w", plugins.ErrInvalidName), http.StatusBadRequest},
	} {
		if got := s.mapError(tt.err); got == nil || got.Status != tt.want {
			t.Errorf("mapError(%v) = %+v, want status %d", tt.err, got, tt.want)
		}
	}
}
