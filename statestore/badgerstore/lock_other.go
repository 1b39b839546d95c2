//go:build !unix

package badgerstore

// lockDir relies on Badger's own directory lock where flock is unavailable.
func lockDir(string) (func(), error) { return func() {}, nil }
