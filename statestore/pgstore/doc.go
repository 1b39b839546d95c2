// Package pgstore is a statestore.Store on PostgreSQL, for several hosts
// sharing one database. It is the only package of bulkhead that imports pgx.
package pgstore
