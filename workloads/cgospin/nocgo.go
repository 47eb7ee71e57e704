//go:build !cgo

package main

// This program is all about cgo: without it, fail the build with a message that says why.
var _ = cgospin_needs_CGO_ENABLED_1_and_a_C_compiler
