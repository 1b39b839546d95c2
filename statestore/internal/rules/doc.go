// Package rules holds the argument checks and field defaults that every
// statestore backend applies the same way.
package rules
