// Package workflow runs bulkhead workflows durably: YAML DAGs of plugin
// calls whose every finished node is journaled in a statestore.Store, so a
// run resumes where it stopped after a crash.
package workflow
