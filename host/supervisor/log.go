package supervisor

// slog keys.
const (
	keyPlugin   = "plugin"
	keyVersion  = "version"
	keyCause    = "cause"
	keyState    = "state"
	keyErr      = "err"
	keyTook     = "took"
	keyLoads    = "loads"
	keyRebuilds = "rebuilds"
	keyBackoff  = "backoff"
	keyDir      = "dir"
	keyCount    = "count"
)
