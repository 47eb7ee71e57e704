//go:build !cgo

package main

// This program is all about C threads: without cgo, fail the build with a message that says why.
var _ = nativespin_needs_CGO_ENABLED_1_and_a_C_compiler
