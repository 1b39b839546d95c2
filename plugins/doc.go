// Package plugins is bulkhead's plugin catalogue: it scans a directory of
// Wasm modules, watches it, reads each plugin's sidecar manifest, names each
// module version by the SHA-256 of its bytes, and reports every change as an
// Event. It works on bytes and manifests only: it never compiles or runs
// Wasm. The host turns its events into loaded, swapped and unloaded plugins.
//
// # Files
//
// A plugin is NAME.wasm with an optional sidecar NAME.yaml (see Manifest).
// NAME is the file's base name and must match [a-zA-Z0-9_.-]+ without a
// leading dot or dash. Everything else in the directory is ignored: hidden files
// (names starting with "."), editor and temp files ("x.wasm.tmp",
// "x.wasm~", ".x.wasm.swp"), other suffixes (".yml", ".txt"),
// subdirectories and names that are not plugin names.
//
// Every file is opened through an os.Root of the directory, so nothing
// outside it is read: a symbolic link is followed while it stays inside
// (a Kubernetes ConfigMap's "..data" links, "p.wasm -> v2/p.wasm"), and one
// that leads outside is refused with ErrOutsideDir. A module larger than
// WithMaxModuleSize (default DefaultMaxModuleSize, 256 MiB) is refused with
// ErrTooLarge from its size, before it is read, and the read stops one byte
// past the cap, so a file that grows meanwhile is never read whole; a
// sidecar is capped at MaxManifestSize the same way. A refused module is an
// invalid plugin without a version: its Added or Changed event has Invalid
// set, no Bytes and no Version, and Err (and Info.ModuleErr) is a
// *FileError saying why. A refused sidecar is a broken sidecar whose
// problem is a *FileError.
//
// A sidecar is decoded strictly: an unknown key, a malformed size or
// duration, a duplicate key or a limit that abi.Manifest.Validate rejects is
// an error that names the file and the line ("plugins/p.yaml:3: unknown key
// \"memroy\""), as a *ManifestError. Its text never repeats the file's
// content beyond a quoted key or value cut at 32 bytes: the file may not be
// a manifest at all. The "policy" section is kept as raw
// YAML (Manifest.PolicyYAML) for the resilience layer; WithPolicyValidator
// lets the caller reject a bad preset or policy when the sidecar is read.
//
// # Deploying a plugin
//
// The safe way to deploy is write-then-rename: write the new module to a
// temporary name in the same directory (".p.wasm.tmp", which the registry
// ignores), then rename it over p.wasm. The rename is atomic, so the
// registry only ever sees the old file or the complete new one, and reports
// the new version one debounce after the rename.
//
// In-place copies (cp, scp, a slow upload) also work: a partial write is
// never loaded. Each file's events are debounced (WithDebounce, default
// 100 ms), and a file is read only once it is stable: its size, mtime and
// identity (inode and change time on Linux) are the same at two looks a
// debounce apart, and unchanged across the read. A copy that pauses for
// less than the debounce between chunks therefore yields exactly one
// Changed event, with the final bytes. A copy that stalls for longer may
// yield an intermediate version (which the host will most likely fail to
// compile, keeping the old version serving) followed by the final one.
//
// Drop the sidecar first, or together with its module: a module whose
// sidecar has a pending change waits for it, so the Added event carries the
// manifest. A touch (or a rewrite with the same bytes) is no event.
//
// # Lifecycle
//
// New validates options and allocates; it does no I/O and starts nothing.
// Start scans the directory synchronously (sidecars first, then modules):
// when it returns, List has every plugin whose files were stable, and one
// Added event per plugin is queued. It then watches the directory with
// fsnotify and rescans it periodically (WithRescanInterval, default 2 s)
// to catch events the watcher missed, such as on network filesystems, on
// an event queue overflow, or when a symlinked directory is swapped. A
// change found by the rescan goes through the same debounce and stability
// check. Stop stops watching, delivers the events already queued and waits
// for every goroutine the registry started; it is idempotent. A registry is
// started once.
//
// Read re-reads one plugin from disk on demand, bypassing the debounce: a
// supervisor rebuilding a failing plugin gets the file as it is at that
// moment, even before the watcher reports it.
//
// # Events
//
// Added, Changed, Removed and ManifestChanged carry the plugin name, the
// module version (hex SHA-256) and path, the manifest in force, and for
// Added and Changed the module bytes. Delivery, with WithHandler:
//
//   - The handler is called from one goroutine, one event at a time, in the
//     order the registry observed the changes; so in order per plugin too.
//   - No event is dropped or coalesced once observed: between the watcher
//     and the handler sits an unbounded queue, so a slow handler delays
//     events but never loses them and never blocks the watcher. Changes
//     that happen within one debounce are observed as one.
//   - Stop returns after the handler has returned from every event queued
//     before Stop, unless Stop's context ends first. The handler must not
//     call Stop (it would wait for itself).
//
// List and Get reflect a change as soon as it is observed, possibly before
// the handler receives its event.
//
// # Broken sidecars
//
// A plugin keeps its last good manifest. When a sidecar fails to parse (or
// its policy is rejected), Event.Err and Info.ManifestErr carry the reason
// and Manifest stays the last good one, still in force; the host keeps
// serving as before and shows the reason. A plugin that ran without a
// sidecar ran with the zero Manifest, so that is its last good one. A plugin
// that has had no good manifest since it appeared (its sidecar was broken
// from the start) is invalid: Event.Invalid and Info.Invalid are true, and
// the host should quarantine it with Err as the reason until a
// ManifestChanged event with Invalid false arrives. Deleting a sidecar
// reverts the plugin to the zero Manifest.
//
// # Concurrency
//
// All methods are safe for concurrent use. One mutex guards the
// catalogue and the event queue has its own; the watcher releases the
// catalogue lock before it queues an event, so the two are never held
// together. Two goroutines run between Start and Stop: the
// watcher (fsnotify events, debounce timers, rescans, file reads, manifest
// parsing and the policy validator) and the event delivery. The policy
// validator also runs on the goroutine that calls Read, so it must be safe
// for concurrent use.
//
// # Errors
//
// ErrNotFound, ErrInvalidName and ErrUnstable come from Read, and a
// *FileError (ErrTooLarge, ErrOutsideDir) for a refused file; ErrStarted
// from a second Start. Manifest problems are *ManifestError values, joined
// with errors.Join when a sidecar has several. Unreadable files and
// directory errors after Start are logged (WithLogger) and retried by the
// rescan once the file changes.
package plugins
