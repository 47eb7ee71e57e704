// Command sites-fixture is a test subject for gocpu-gobin's probe sites and DWARF offsets: one
// function per prologue shape the Go compiler emits (frameless leaf, small, medium and huge
// frames, closure, method, jump-table switch, defer, variadic) plus a cgo call when built with
// cgo. Tests only read its bytes; running it prints one number.
package main

import (
	"fmt"
	"os"
)

//go:noinline
func leaf(a, b int) int {
	return a*b + 1
}

//go:noinline
func smallFrame(n int) int {
	return leaf(n, n+1) + 2
}

//go:noinline
func mediumFrame(n int) int {
	var buf [300]byte
	for i := range buf {
		buf[i] = byte(i + n)
	}
	return int(buf[n%len(buf)]) + leaf(n, 2)
}

//go:noinline
func hugeFrame(n int) int {
	var buf [9000]byte
	for i := range buf {
		buf[i] = byte(i ^ n)
	}
	return int(buf[n%len(buf)]) + leaf(n, 3)
}

//go:noinline
func closureMaker(k int) func(int) int {
	return func(x int) int { return leaf(x, k) }
}

type acc struct{ total int }

//go:noinline
func (a *acc) add(v int) int {
	a.total += leaf(v, 1)
	return a.total
}

//go:noinline
func switchy(x int) int {
	switch x {
	case 0:
		return leaf(x, 10)
	case 1:
		return leaf(x, 11)
	case 2:
		return leaf(x, 12)
	case 3:
		return leaf(x, 13)
	case 4:
		return leaf(x, 14)
	case 5:
		return leaf(x, 15)
	case 6:
		return leaf(x, 16)
	case 7:
		return leaf(x, 17)
	case 8:
		return leaf(x, 18)
	case 9:
		return leaf(x, 19)
	}
	return -1
}

//go:noinline
func deferred(n int) (out int) {
	defer func() {
		if recover() != nil {
			out = -1
		}
	}()
	if n > 1000 {
		panic("large")
	}
	return leaf(n, 4)
}

//go:noinline
func variadic(xs ...int) int {
	s := 0
	for _, x := range xs {
		s += leaf(x, 5)
	}
	return s
}

func main() {
	n := len(os.Args)
	a := &acc{}
	s := leaf(n, 1) + smallFrame(n) + mediumFrame(n) + hugeFrame(n) + closureMaker(n)(n) +
		a.add(n) + switchy(n) + deferred(n) + variadic(n, n+1) + cgoCall(n)
	fmt.Println(s)
}
