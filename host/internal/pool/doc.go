// Package pool keeps a bounded set of reusable objects (module instances) for
// one plugin version: at most Max exist at once, at least Min are kept warm,
// and idle ones above Min are closed after IdleTimeout.
//
// An object serves one caller at a time. A caller that gets one must Release
// it, saying whether it may be reused; an object that trapped, timed out or
// hit its memory cap is released with reuse=false and closed.
package pool
