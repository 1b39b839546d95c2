// Package badgerstore is the embedded statestore.Store of bulkhead, on Badger.
package badgerstore
