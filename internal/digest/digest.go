// Package digest names content by its SHA-256: the version of a plugin's
// module bytes, and the short form of it that logs and tables show.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
)

// Of returns the lower-case hex SHA-256 of b (64 characters).
func Of(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Short returns the first 12 characters of a digest, or v itself when it is
// shorter: enough to tell versions apart in a log line or a table.
func Short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}
