// Package resiliencetest provides test helpers for code using resilience:
// a fake Clock whose time moves only when the test advances it.
package resiliencetest
