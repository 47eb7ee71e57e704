//go:build cgo

package main

/*
static int sites_fixture_twice(int x) {
	volatile int v = x;
	return 2 * v;
}
*/
import "C"

// cgoCall crosses into C when the fixture is built with cgo.
//
//go:noinline
func cgoCall(n int) int {
	return int(C.sites_fixture_twice(C.int(n)))
}
