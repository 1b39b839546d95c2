package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile keeps its promises: a multi-stage build of a static
// binary onto an empty base, a non-root user, the /data volume the
// service's defaults point into, and a health check on /readyz through
// `bulkhead ready` (the base has no curl).
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	for _, re := range []string{
		`(?m)^FROM \S+ AS build$`,
		`(?m)^RUN CGO_ENABLED=0 go build .*-X main\.version=\$\{VERSION\}.* \./cmd/bulkhead`,
		`(?m)^FROM scratch$`,
		`(?m)^USER 65532:65532$`,
		`(?m)^VOLUME /data$`,
		`(?m)BULKHEAD_DATA=/data`,
		`(?m)BULKHEAD_PLUGINS=/data/plugins`,
		`(?m)^HEALTHCHECK .*\n\s+CMD \["/bulkhead", "ready"`,
		`(?m)^ENTRYPOINT \["/bulkhead"\]$`,
		`(?m)^CMD \["serve"\]$`,
	} {
		if !regexp.MustCompile(re).MatchString(df) {
			t.Errorf("Dockerfile lacks %s", re)
		}
	}
	// The health check's command exists and probes /readyz.
	code, out, _ := bulkhead(t, "", "ready", "--help")
	if code != exitOK || !strings.Contains(out, "--server") {
		t.Errorf("bulkhead ready --help: exit %d\n%s", code, out)
	}
	src, _ := os.ReadFile("ready.go")
	if !strings.Contains(string(src), `"/readyz"`) {
		t.Error("bulkhead ready does not probe /readyz")
	}
}
