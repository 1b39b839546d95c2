// Command bulkhead runs workflows whose nodes are sandboxed WebAssembly
// plugins: one-shot (`call`, `run`), as a service (`serve`), and as the
// operator's tool for what the service or the data directory holds (`runs`,
// `dlq`, `checkpoints`, `plugins`, `config show`, `store check|repair`),
// plus `new` for node projects. The root command is a cobra command (help,
// --version, completion, typo suggestions); each subcommand parses its own
// GNU-style flags with pflag. `bulkhead help COMMAND` prints a command's
// flags on stdout; commands that print data take -o table|json.
//
// Exit statuses: 0 success; 1 the plugin, the run or the check failed
// (`plugins ls` with a refused plugin, `config show` with a problem); 2 bad
// usage or configuration, a module that cannot be loaded, or a data
// directory or service that cannot be used.
//
// Plugins directories are loaded by one loader (server.NewLoader) in run,
// serve and plugins, so a sidecar one of them refuses, all refuse.
//
// This package only wires: flags, configuration, signals and fx live here;
// the behaviour lives in host, resilience, statestore and plugins. main calls
// doMain, which takes its arguments and streams and returns the exit status,
// so tests run the CLI in-process.
//
// The data directory is --data, else $RESILIENCE_CHECKPOINT_DIR, else
// $BULKHEAD_DATA, else ./.bulkhead; compiled code is cached in its cache
// folder (or $BULKHEAD_CACHE), except for `call`, which caches in the user
// cache directory unless --data is given. The commands that read runs, dead letters,
// checkpoints or plugins talk to a running service instead when --server or
// $BULKHEAD_SERVER is set.
//
// The state store is the embedded one in the data directory unless --store
// (else $BULKHEAD_STORE, or store.url for serve) names a postgres:// or
// postgresql:// URL; every command opens it through server.OpenStore. Another
// scheme is bad usage (2). `migrate` applies the PostgreSQL schema
// migrations (1 when the database cannot be migrated); `store check|repair`
// refuse a URL. The URL's password is never printed: config show replaces
// it and errors never hold it.
package main
