// Package config builds the configuration of `bulkhead serve` and records
// where every value came from, for `bulkhead config show`.
//
// # Precedence
//
// Lowest first: the documented defaults; the resilience preset (for policy
// fields); one YAML file (--config, else $BULKHEAD_CONFIG); environment
// variables; flags. The RESILIENCE_* variables keep their meaning:
// RESILIENCE_ENABLED (resilience.enabled), RESILIENCE_CHECKPOINT_DIR
// (data_dir, over BULKHEAD_DATA), RESILIENCE_HEALTH_CHECK_INTERVAL
// (resilience.health_check_interval; a bare number is milliseconds, as in
// 30000). Every other setting has a BULKHEAD_* variable; the
// bearer token comes from BULKHEAD_TOKEN or token_file only, and is never
// printed.
//
// # Errors
//
// The file is decoded strictly: an unknown key, a duplicate key, a value of
// the wrong type or a malformed duration or size is an error naming the file
// and line ("bulkhead.yaml:4: field listen_addr not found"). Validation
// problems name the key and where its value came from (file and line, the
// variable or the flag). Load reports every problem at once (errors.Join).
// The listen address must be HOST:PORT with a port from 0 to 65535. A
// non-loopback listen address without a token is refused (ErrNoToken), and
// so is one with a token shorter than MinTokenLen (ErrShortToken).
// public_names (BULKHEAD_PUBLIC_NAMES, --public-names; comma-separated in
// both) lists the names the service answers to beyond loopback and the
// listen host. store.url (BULKHEAD_STORE, --store) is empty for the
// embedded store or a postgres:// or postgresql:// URL; any other scheme
// is an error, and Settings shows the URL with its password replaced by
// server.Redacted.
//
// # Design
//
// Settings are a table of fields (key, variables, flag, parser, default)
// rather than reflection over struct tags, so one place states the
// variable and flag of every key and `config show` prints them in a
// stable order. The resilience policy section overrides only the fields it
// names: the section's YAML node is decoded over the preset's policy.
// Config does no I/O besides reading the file and the token file.
package config
