package plugins

// slog keys.
const (
	keyPlugin  = "plugin"
	keyVersion = "version"
	keyPath    = "path"
	keySize    = "size"
	keyErr     = "err"
)
