package resilience

import "github.com/bulkhead-run/bulkhead/internal/duration"

// Duration is a time.Duration that reads and writes as a Go duration string
// ("250ms", "1m30s") in YAML and JSON. "" and 0 read as zero (not set: the
// policy's default applies), JSON null leaves the value unchanged, any other
// bare number is refused. It is the same type as abi.Duration.
type Duration = duration.Duration
