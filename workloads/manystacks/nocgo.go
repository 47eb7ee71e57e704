//go:build !cgo

package main

// This program needs cgo (its distinct stacks reach the daemon through runtime.cgocall too):
// without it, fail the build with a message that says why.
var _ = manystacks_needs_CGO_ENABLED_1_and_a_C_compiler
