//go:build !cgo

package main

// cgoCall stands in for the cgo call when cgo is disabled.
//
//go:noinline
func cgoCall(n int) int {
	return 2 * n
}
