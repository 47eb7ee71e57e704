// Command offsets-probe exists for its DWARF only: `cargo xtask offsets` builds it with every
// installed Go toolchain and reads the runtime's struct layouts (runtime.g, m, p, schedt and the
// allgs slice type) from the result. Any program would do; the runtime's types are always there.
package main

import "runtime"

func main() {
	runtime.Gosched()
}
