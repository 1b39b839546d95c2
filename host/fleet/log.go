package fleet

// slog keys.
const (
	keyHost    = "host_id"
	keyPlugin  = "plugin"
	keyVersion = "version"
	keyErr     = "err"
)
