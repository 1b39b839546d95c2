package resilience

// slog keys.
const (
	logKeyExecutor  = "executor"
	logKeyFrom      = "from"
	logKeyTo        = "to"
	logKeyComponent = "component"
	logKeyStatus    = "status"
	logKeyMessage   = "message"
)
